"""One deadline: --timeout bounds every request and wait, a rollback has its own short
bound, and a CI cancel ends any stage within 3 s with its result written, however the
cluster hangs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from emulator import MarathonEmulator, Request, Response
from helpers import treadle

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def released() -> Iterator[threading.Event]:
    """Ends every hang when the test ends, so that the emulator can stop."""
    event = threading.Event()
    yield event
    event.set()


def hang(released: threading.Event, when: Callable[[Request], bool]) -> Callable[[Request], None]:
    """A cluster that takes the connection and never answers the matching requests."""

    def fault(request: Request) -> Response | None:
        if when(request):
            released.wait(120)
        return None

    return fault


def api(request: Request) -> bool:
    return request.path.startswith("/v2/")


def after_create(marathon: MarathonEmulator) -> Callable[[Request], bool]:
    """Every request about the new server group, and every listing, once it exists."""

    def matches(request: Request) -> bool:
        return (
            request.path.startswith(("/v2/apps/web-v001", "/v2/groups"))
            and marathon.app("/web-v001") is not None
        )

    return matches


def seeded(marathon: MarathonEmulator) -> None:
    deployed = treadle("deploy", "--app", "web", "--image", "web:1", "--marathon-url", marathon.url)
    assert deployed.code == 0, deployed


def test_a_cluster_that_never_answers_ends_at_the_timeout(
    marathon: MarathonEmulator, released: threading.Event, tmp_path: Path
) -> None:
    marathon.faults.append(hang(released, api))
    started = time.monotonic()
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:1",
        "--timeout",
        "3s",
        "--marathon-url",
        marathon.url,
        "--output",
        str(tmp_path / "result.json"),
        output=tmp_path / "result.json",
    )
    took = time.monotonic() - started
    assert outcome.code == 4, outcome
    assert took < 3 + 1.5, f"took {took:.1f}s for --timeout 3s"
    assert outcome.result is not None and outcome.result["status"] == "failed"
    assert marathon.app_changes() == []


@pytest.mark.parametrize("rollback", [False, True], ids=["plain", "rollback"])
def test_a_cluster_that_stops_answering_mid_deploy_ends_near_the_timeout(
    marathon: MarathonEmulator, released: threading.Event, tmp_path: Path, rollback: bool
) -> None:
    seeded(marathon)
    marathon.faults.append(hang(released, after_create(marathon)))
    started = time.monotonic()
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--strategy",
        "red-black",
        "--timeout",
        "3s",
        "--request-timeout",
        "30s",
        *(["--rollback-on-failure"] if rollback else []),
        "--marathon-url",
        marathon.url,
        "--output",
        str(tmp_path / "result.json"),
        output=tmp_path / "result.json",
    )
    took = time.monotonic() - started
    assert outcome.code == 1, outcome
    # The timeout, then (with a rollback) one request of at most 10 s that gets no answer.
    bound = 3 + (10 if rollback else 0) + 3
    assert took < bound, f"took {took:.1f}s"
    assert outcome.result is not None
    assert outcome.result["server_group"] == "web-v001"
    if rollback:
        assert outcome.result["rolled_back"] is False
        assert "taken for hung" in outcome.result["error"]["message"]


def run_in_background(
    marathon: MarathonEmulator, tmp_path: Path, *args: str
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TREADLE_", "GITHUB_", "CI_"))}
    env["PYTHONPATH"] = os.pathsep.join([SRC, env.get("PYTHONPATH", "")])
    return subprocess.Popen(
        [sys.executable, "-m", "treadle", *args, "--marathon-url", marathon.url]
        + ["--output", str(tmp_path / "result.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for_line(process: subprocess.Popen[str], text: str, seconds: float = 20) -> str:
    assert process.stderr is not None
    end = time.monotonic() + seconds
    seen = ""
    while time.monotonic() < end:
        line = process.stderr.readline()
        seen += line
        if text in line:
            return seen
    raise AssertionError(f"{text!r} never came: {seen}")


@pytest.mark.parametrize("rollback", [False, True], ids=["plain", "rollback"])
def test_sigterm_ends_a_stage_stuck_in_a_request_within_3s_with_its_result(
    marathon: MarathonEmulator, released: threading.Event, tmp_path: Path, rollback: bool
) -> None:
    seeded(marathon)
    marathon.faults.append(hang(released, after_create(marathon)))
    process = run_in_background(
        marathon,
        tmp_path,
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--strategy",
        "red-black",
        "--timeout",
        "10m",
        *(["--rollback-on-failure"] if rollback else []),
    )
    try:
        wait_for_line(process, "creating web-v001")
        time.sleep(0.5)  # inside a request that never gets an answer
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        took = time.monotonic() - signalled
    finally:
        process.kill()
        process.communicate()
    assert took < 3.0, f"took {took:.1f}s after SIGTERM"
    assert process.returncode == 1
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "failed" and result["error"]["type"] == "Cancelled"
    assert result["server_group"] == "web-v001"


def test_a_cancel_before_anything_changed_still_says_nothing_changed(
    marathon: MarathonEmulator, released: threading.Event, tmp_path: Path
) -> None:
    """Waiting for another run's lease: a cancel there changes nothing (exit 1, Cancelled,
    and no server group named)."""
    seeded(marathon)
    (tmp_path / "holder").mkdir()
    marathon.faults.append(hang(released, after_create(marathon)))
    holder = run_in_background(
        marathon, tmp_path / "holder", "deploy", "--app", "web", "--image", "web:2"
    )
    waiter = None
    try:
        wait_for_line(holder, "creating web-v001")
        waiter = run_in_background(
            marathon, tmp_path, "resize", "--server-group", "web-v000", "--instances", "2"
        )
        wait_for_line(waiter, "waiting for the cluster lease")
        waiter.send_signal(signal.SIGTERM)
        waiter.wait(5)
    finally:
        for process in (holder, waiter):
            if process is not None:
                process.kill()
                process.communicate()
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["error"]["type"] == "Cancelled"
    assert marathon.app("/web-v000")["instances"] == 1  # type: ignore[index]
