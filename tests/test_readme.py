"""The README's walkthrough is true: each of its commands runs as written against the
Marathon emulator, exits as the README says, and leaves the cluster as it says."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
from emulator import MarathonEmulator
from helpers import treadle

README = Path(__file__).parent.parent / "README.md"


def walkthrough(name: str) -> list[str]:
    """The lines of the bash block that follows `<!-- walkthrough: NAME ... -->`."""
    text = README.read_text()
    marker = text.index(f"<!-- walkthrough: {name}")
    block = re.search(r"```bash\n(.*?)```", text[marker:], re.DOTALL)
    assert block, f"no bash block after the {name} walkthrough marker"
    return [
        line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    ]


def test_marathon_walkthrough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env: dict[str, str] = {}
    with MarathonEmulator(
        deploy_seconds=0.05, task_start_seconds=0.05, health_seconds=0.05
    ) as marathon:
        for line in walkthrough("marathon"):
            command, _, comment = line.partition("#")
            words = shlex.split(command)
            if words[0] == "export":
                key, _, _ = words[1].partition("=")
                env[key] = marathon.url
                continue
            assert words[0] == "treadle", line
            expected = int(m.group(1)) if (m := re.search(r"exit (\d)", comment)) else 0
            outcome = treadle(*words[1:], env=env)
            assert outcome.code == expected, f"{line}\n{outcome}"

        assert json.loads(Path("image.json").read_text())["image"] == "registry.example/web:1.1"
        assert marathon.app("/web-prod-v000") is None
        current = marathon.app("/web-prod-v001")
        assert current is not None and current["instances"] == 3 and current["tasksRunning"] == 3
    assert os.environ.get("TREADLE_MARATHON_URL") is None
