"""The README's Marathon walkthrough is true: each of its commands runs as written against
the Marathon emulator, exits as the README says, and leaves the cluster as it says.
(The Docker walkthrough runs on a real engine: tests/on_docker/test_docs.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from emulator import MarathonEmulator
from helpers import treadle
from walkthroughs import walkthrough


def test_marathon_walkthrough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env: dict[str, str] = {}
    with MarathonEmulator(
        deploy_seconds=0.05, task_start_seconds=0.05, health_seconds=0.05
    ) as marathon:
        for step in walkthrough("marathon"):
            if step.words[0] == "export":
                env[step.words[1].partition("=")[0]] = marathon.url
                continue
            assert step.words[0] == "treadle", step.line
            outcome = treadle(*step.words[1:], env=env)
            assert outcome.code == step.exit_code, f"{step.line}\n{outcome}"

        assert json.loads(Path("image.json").read_text())["image"] == "registry.example/web:1.1"
        assert marathon.app("/web-prod-v000") is None
        current = marathon.app("/web-prod-v001")
        assert current is not None and current["instances"] == 3 and current["tasksRunning"] == 3


def test_pipeline_walkthrough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with MarathonEmulator(
        deploy_seconds=0.05, task_start_seconds=0.05, health_seconds=0.05
    ) as marathon:
        env = {"TREADLE_MARATHON_URL": marathon.url}
        for step in walkthrough("pipeline"):
            assert step.words[0] == "treadle", step.line
            outcome = treadle(*step.words[1:], env=env)
            assert outcome.code == step.exit_code, f"{step.line}\n{outcome}"
        assert marathon.app("/shop-v000") is None and marathon.app("/shop-v001") is None
        fixed = marathon.app("/shop-v002")
        assert fixed is not None and fixed["instances"] == 2 and fixed["tasksRunning"] == 2
