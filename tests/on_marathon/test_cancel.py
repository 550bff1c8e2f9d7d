"""A CI cancel (SIGTERM, SIGINT) stops the stage at once, writes the result, and still
rolls back when asked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from emulator import MarathonEmulator

HEALTH_CHECKED = {
    "container": {
        "type": "DOCKER",
        "docker": {"network": "BRIDGE", "portMappings": [{"containerPort": 80}]},
    },
    "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}],
}


def start(args: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TREADLE_", "GITHUB_", "GITLAB_"))
    }
    return subprocess.Popen(
        [sys.executable, "-m", "treadle", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )


def wait_for_line(process: subprocess.Popen[str], text: str) -> str:
    seen = ""
    assert process.stderr is not None
    for line in process.stderr:
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"never printed {text!r}:\n{seen}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cancel_mid_wait_writes_a_failed_result_and_rolls_back(
    marathon: MarathonEmulator, tmp_path: Path, sig: signal.Signals
) -> None:
    marathon.add_app(
        {
            "id": "/web-v000",
            "instances": 2,
            "labels": {"treadle.created-at": "2026-01-01T00:00:00.000Z"},
            "container": {"type": "DOCKER", "docker": {"image": "web:1"}},
        }
    )
    marathon.unhealthy_images.add("web:sick")
    (tmp_path / "spec.json").write_text(json.dumps(HEALTH_CHECKED))
    process = start(
        [
            "deploy",
            "--app",
            "web",
            "--image",
            "web:sick",
            "--spec",
            "spec.json",
            "--strategy",
            "red-black",
            "--rollback-on-failure",
            "--timeout",
            "10m",
            "--marathon-url",
            marathon.url,
            "--output",
            "result.json",
        ],
        tmp_path,
    )
    try:
        wait_for_line(process, "web-v001: 0/2 healthy")
        sent = time.monotonic()
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=10)
        took = time.monotonic() - sent
    finally:
        process.kill()
        process.communicate()
    assert "Traceback" not in stderr, stderr
    assert process.returncode == 1
    assert took < 3, f"took {took:.1f}s to stop after {sig.name}"
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "failed"
    assert result["error"]["type"] == "Cancelled"
    assert sig.name in result["error"]["message"]
    assert result["rolled_back"] is True and result["server_group"] == "web-v001"
    assert marathon.app("/web-v001")["instances"] == 0
    assert marathon.app("/web-v000")["instances"] == 2


def test_a_deploy_killed_mid_wait_and_rerun_ends_with_one_healthy_server_group(
    tmp_path: Path,
) -> None:
    with MarathonEmulator(
        deploy_seconds=2.0, task_start_seconds=0.5, health_seconds=0.1
    ) as marathon:
        marathon.add_app(
            {
                "id": "/web-v000",
                "instances": 2,
                "labels": {"treadle.created-at": "2026-01-01T00:00:00.000Z"},
                "container": {"type": "DOCKER", "docker": {"image": "web:1"}},
            }
        )
        args = [
            "deploy",
            "--app",
            "web",
            "--image",
            "web:2",
            "--strategy",
            "red-black",
            "--run-key",
            "pipeline-41-deploy",
            "--marathon-url",
            marathon.url,
            "--output",
            "result.json",
        ]
        first = start(args, tmp_path)
        try:
            wait_for_line(first, "web-v001: 0/2 healthy")
            first.send_signal(signal.SIGTERM)
            first.communicate(timeout=10)
        finally:
            first.kill()
            first.communicate()
        assert first.returncode == 1
        assert json.loads((tmp_path / "result.json").read_text())["error"]["type"] == "Cancelled"

        rerun = start(args, tmp_path)
        _, stderr = rerun.communicate(timeout=60)
        assert rerun.returncode == 0, stderr
        assert "earlier attempt" in stderr
        ids = sorted(app["id"] for app in marathon_apps(marathon))
        assert ids == ["/web-v000", "/web-v001"], "exactly one new server group"
        new = marathon.app("/web-v001")
        assert new["instances"] == 2 and new["tasksRunning"] == 2
        assert marathon.app("/web-v000")["instances"] == 0, "red-black carried on after the rerun"


def marathon_apps(marathon: MarathonEmulator) -> list[dict]:
    import httpx

    return httpx.get(f"{marathon.url}/v2/apps").json()["apps"]
