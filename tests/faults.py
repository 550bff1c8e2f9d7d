"""Every stage under every fault a DC/OS cluster throws, against the emulator: the stage
either reaches the asked state or fails cleanly (exit 1, its result written with an
`error`), never loses or duplicates a server group, and never prints a secret.

One matrix serves both the test that holds CI to it (tests/test_reliability.py) and the
table a person reads (benchmarks/reliability.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from emulator import MarathonEmulator, MetronomeEmulator, Request, Response, Token
from helpers import Outcome

TOKEN = "tok-faults-5e8d2a91c4"
FAST = {"deploy_seconds": 0.1, "task_start_seconds": 0.05, "health_seconds": 0.05}
HEALTH_CHECKED = {
    "container": {
        "type": "DOCKER",
        "docker": {"network": "BRIDGE", "portMappings": [{"containerPort": 80}]},
    },
    "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}],
}


def first(
    count: int,
    answer: Callable[[Request], Response | None],
    methods: tuple[str, ...] = (),
    after: int = 0,
) -> Callable[[Request], Response | None]:
    """A fault that answers `count` matching API requests, once `after` of them went by
    untouched, then lets them all by."""
    seen = [0]
    lock = threading.Lock()

    def fault(request: Request) -> Response | None:
        if not request.path.startswith(("/v1/", "/v2/")) or (
            methods and request.method not in methods
        ):
            return None
        with lock:
            seen[0] += 1
            if not after < seen[0] <= after + count:
                return None
        return answer(request)

    return fault


def status(code: int, body: object = None) -> Callable[[Request], Response]:
    return lambda request: Response(code, body)


def slow(seconds: float) -> Callable[[Request], None]:
    def answer(request: Request) -> None:
        time.sleep(seconds)

    return answer


LOCKED = {
    "message": "App is locked by one or more deployments. Override with the option '?force=true'. "
    "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
    "deployments": [{"id": "97c136bf"}],
}

# name -> how to install it on a fresh emulator (transport faults), or None for the
# cluster-state faults each stage sets up itself.
TRANSPORT: dict[str, Callable[[], Callable[[Request], Response | None]]] = {
    # After the first answer: a server that never answered is a wrong URL (exit 4).
    "connection reset x3": lambda: first(3, lambda request: Response(0, reset=True), after=1),
    "502 bad gateway x3": lambda: first(3, status(502)),
    "503 unavailable x3": lambda: first(3, status(503, {"message": "unavailable"})),
    "504 gateway timeout x3": lambda: first(3, status(504)),
    "leader change (503, empty) x2": lambda: first(2, status(503)),
    "slow answer past the request timeout": lambda: first(1, slow(1.5)),
    "409 deployment lock that clears x3": lambda: first(
        3, status(409, LOCKED), ("PUT", "DELETE", "POST")
    ),
}


@dataclass
class Cell:
    stage: str
    fault: str
    outcome: str  # reached | failed cleanly | BROKEN: why
    lost: int = 0
    duplicated: int = 0
    leaked: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.outcome.startswith("BROKEN") and not (
            self.lost or self.duplicated or self.leaked
        )


def ids(emu: MarathonEmulator) -> set[str]:
    """The server groups of cluster web that exist now."""
    return {f"/web-v00{n}" for n in range(4) if emu.app(f"/web-v00{n}") is not None}


def run_stage(args: list[str], folder: Path, url_flag: str, url: str) -> Outcome:
    """The stage as its own process, as CI runs it: what it prints is its own alone (the
    emulator's threads print into this process)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TREADLE_", "GITHUB_", "GITLAB_", "DCOS_"))
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "treadle",
            *args,
            url_flag,
            url,
            "--output",
            str(folder / "result.json"),
            "--timeout",
            "4s",
            "--request-timeout",
            "1s",
        ],
        capture_output=True,
        text=True,
        env={**env, "DCOS_ACS_TOKEN": TOKEN},
        timeout=60,
    )
    return Outcome(done.returncode, None, done.stdout, done.stderr)


def judge(cell: Cell, outcome: Outcome, folder: Path, reached: Callable[[], bool]) -> Cell:
    everything = outcome.stdout + outcome.stderr
    result_file = folder / "result.json"
    if result_file.exists():
        everything += result_file.read_text()
    cell.leaked = TOKEN in everything
    if "Traceback" in outcome.stderr:
        cell.outcome = "BROKEN: traceback"
    elif outcome.code == 0:
        cell.outcome = "reached" if reached() else "BROKEN: exit 0 but not there"
    elif outcome.code == 1:
        result = json.loads(result_file.read_text()) if result_file.exists() else {}
        clean = result.get("status") == "failed" and result.get("error", {}).get("message")
        cell.outcome = "failed cleanly" if clean else "BROKEN: exit 1 without a result"
    else:
        cell.outcome = f"BROKEN: exit {outcome.code}"
    return cell


def marathon_cell(stage: str, fault: str) -> Cell:
    """One stage under one fault, on a cluster holding web-v000 (2 instances)."""
    cell = Cell(stage, fault, "")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, MarathonEmulator(auth=Token(TOKEN), **FAST) as emu:
        folder = Path(tmp)
        emu.add_app(
            {
                "id": "/web-v000",
                "instances": 2,
                "labels": {"treadle.created-at": "2026-01-01T00:00:00.000Z"},
                "container": {"type": "DOCKER", "docker": {"image": "web:1"}},
            }
        )
        image = "web:2"
        extra: list[str] = []
        if fault in TRANSPORT:
            emu.faults.append(TRANSPORT[fault]())
        elif fault == "crash-looping tasks":
            emu.failing_images.add(image := "web:crashes")
        elif fault == "deployment that never finishes":
            emu.unhealthy_images.add(image := "web:sick")
            (folder / "spec.json").write_text(json.dumps(HEALTH_CHECKED))
            extra = ["--spec", str(folder / "spec.json")]
        before = ids(emu)
        if stage == "deploy":
            args = [
                "deploy",
                "--app",
                "web",
                "--image",
                image,
                "--strategy",
                "red-black",
                "--rollback-on-failure",
                *extra,
            ]

            def reached() -> bool:
                return (emu.app("/web-v001") or {}).get("tasksRunning") == 2 and emu.app(
                    "/web-v000"
                )["instances"] == 0
        elif stage == "resize":
            args = ["resize", "--server-group", "web-v000", "--instances", "3"]

            def reached() -> bool:
                return emu.app("/web-v000")["tasksRunning"] == 3
        else:
            emu.add_app(
                {
                    "id": "/web-v001",
                    "instances": 1,
                    "labels": {"treadle.created-at": "2026-02-01T00:00:00.000Z"},
                    "container": {"type": "DOCKER", "docker": {"image": "web:2"}},
                }
            )
            before = ids(emu)
            args = ["destroy", "--server-group", "web-v000"]

            def reached() -> bool:
                return emu.app("/web-v000") is None

        outcome = run_stage(args, folder, "--marathon-url", emu.url)
        judge(cell, outcome, folder, reached)
        after = ids(emu)
        expected_gone = {"/web-v000"} if stage == "destroy" and outcome.code == 0 else set()
        cell.lost = len(before - after - expected_gone)
        cell.duplicated = max(0, len(after - before) - (1 if stage == "deploy" else 0))
        if stage == "deploy" and outcome.code == 1:
            # A failed deploy may leave its new server group only when the result names it.
            named = json.loads((folder / "result.json").read_text()).get("server_group")
            cell.duplicated += len({i.rsplit("/", 1)[1] for i in after - before} - {named})
    cell.seconds = time.monotonic() - started
    return cell


def metronome_cell(fault: str) -> Cell:
    cell = Cell("run-job", fault, "")
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp, MetronomeEmulator(auth=Token(TOKEN)) as emu:
        folder = Path(tmp)
        seconds = 60.0 if fault == "run that stays ACTIVE" else 0.2
        emu.script("ci.version", stdout="TREADLE_OUTPUT version=1.2.3\n", seconds=seconds)
        if fault in TRANSPORT:
            emu.faults.append(TRANSPORT[fault]())
        outcome = run_stage(
            ["run-job", "--job-id", "ci.version", "--cmd", "./version.sh"],
            folder,
            "--dcos-url",
            emu.dcos_url,
        )

        def reached() -> bool:
            return json.loads((folder / "result.json").read_text())["outputs"] == {
                "version": "1.2.3"
            }

        judge(cell, outcome, folder, reached)
        if fault == "run that stays ACTIVE" and not emu.stopped_runs():
            cell.outcome = "BROKEN: the run was not stopped at the timeout"
    cell.seconds = time.monotonic() - started
    return cell


STATE_FAULTS = {
    "deploy": ["crash-looping tasks", "deployment that never finishes"],
    "resize": [],
    "destroy": [],
    "run-job": ["run that stays ACTIVE"],
}


def matrix() -> list[tuple[str, str]]:
    """(stage, fault) for every stage and every fault that applies to it."""
    cells = []
    for stage in ("deploy", "resize", "destroy", "run-job"):
        for fault in ["none", *TRANSPORT, *STATE_FAULTS[stage]]:
            cells.append((stage, fault))
    return cells


def run_cell(stage: str, fault: str) -> Cell:
    return metronome_cell(fault) if stage == "run-job" else marathon_cell(stage, fault)
