"""The safety rows of benchmarks/reliability.py: concurrent deploys, deploys killed -9
at random points and run again, rollbacks in the middle of a rolling step, and a
cluster that stops answering. Each row runs real treadle processes (tests/scenarios.py)
and counts the invariant violations found, which must all be 0; tests/test_reliability.py
holds CI to a fast subset (`ci_rows`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from backends import TOKEN, EngineImages, engine, marathon
from emulator import Request, Response
from scenarios import (
    CLUSTER,
    FOREIGN,
    HOLDING_THE_LEASE,
    PATHS,
    STRATEGIES,
    Attempt,
    Backend,
    KillPoint,
    World,
    concurrent,
    kill_and_rerun,
    rollback_in_step,
)

from treadle.stages.lease import RELEASE_SECONDS, TTL

Factory = Callable[[], AbstractContextManager[Backend]]


@dataclass
class Row:
    scenario: str
    backend: str
    runs: int = 0  # treadle processes
    outcome: str = ""
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class Place:
    """A backend the rows run on, and how many trials it runs at once."""

    name: str
    factory: Factory
    workers: int


@dataclass(frozen=True)
class Spec:
    """One row to run: a short label (a test id, a progress line), and how."""

    label: str
    backend: str
    run: Callable[[], Row]


def codes(attempts: Sequence[Attempt]) -> str:
    counted = Counter("killed" if a.killed else f"exit {a.code}" for a in attempts)
    return ", ".join(f"{what} x{n}" for what, n in sorted(counted.items()))


@contextlib.contextmanager
def world(factory: Factory) -> Iterator[World]:
    with tempfile.TemporaryDirectory() as tmp, factory() as backend, World(backend, Path(tmp)) as w:
        yield w


def timed(row: Row, body: Callable[[Row], None]) -> Row:
    started = time.monotonic()
    try:
        body(row)
    except Exception as e:  # a scenario that could not run is counted, not hidden
        row.violations.append(f"the scenario broke: {type(e).__name__}: {e}")
    row.seconds = time.monotonic() - started
    return row


# --- concurrency ------------------------------------------------------------------------


def concurrency_row(place: Place, strategy: str, jobs: int, run_keys: bool) -> Row:
    keys = "run keys" if run_keys else "no run keys"
    row = Row(f"{jobs} at once, {strategy}, {keys}", place.name)

    def body(row: Row) -> None:
        with world(place.factory) as w:
            attempts = concurrent(w, strategy, jobs, run_keys=run_keys)
            row.runs, row.outcome = len(attempts), codes(attempts)
            row.violations += w.violations()

    return timed(row, body)


# --- kill -9 at random points, then rerun -------------------------------------------------


def reference(place: Place, strategy: str, row: Row) -> float:
    """How long an untroubled deploy of `strategy` works here: from its first line (it
    holds the lease and creates) to its end."""
    with world(place.factory) as w:
        attempt = w.start(w.job(strategy))
        w.settle()
        row.runs += 1
        row.violations += w.violations()
        first = attempt.lines[0][0] if attempt.lines else attempt.started
        return attempt.ended_at - first


@dataclass
class Trial:
    point: KillPoint
    new_run_key: bool
    attempts: list[Attempt] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def kill_trial(place: Place, strategy: str, trial: Trial) -> Trial:
    with world(place.factory) as w:
        first, rerun = kill_and_rerun(w, strategy, trial.point, new_run_key=trial.new_run_key)
        found = w.violations()
    # A dead holder's lease is taken over at once by its rerun, within TTL by another run.
    acting = rerun.wait_line(r"took the cluster lease|^creating |carrying on", timeout=0)
    waited = (acting or rerun.ended_at) - rerun.started
    if waited > (TTL if trial.new_run_key else 0) + 5:
        found.append(f"the rerun waited {waited:.0f}s for the killed run's lease")
    key = "a new run key" if trial.new_run_key else "its run key"
    trial.violations = [f"killed {trial.point.label}, rerun with {key}: {v}" for v in found]
    trial.attempts = [first, rerun]
    return trial


def kill_row(
    place: Place, strategy: str, trials: int, rng: random.Random, new_keys: bool = True
) -> Row:
    """`trials` deploys killed at random moments, each run again: every other one with
    its run key, the others with a new one (which waits for the dead lease to expire).
    One in five is killed once it holds the lease, before it creates anything; the
    others at a moment uniform over a clean deploy's work, from its first line (not over
    the interpreter starting, which parallel trials slow down)."""
    row = Row(f"kill -9 at random, {strategy}, rerun", place.name)

    def body(row: Row) -> None:
        work = reference(place, strategy, row)
        plans = []
        for i in range(trials):
            delay = rng.uniform(0.0, work)
            point = (
                HOLDING_THE_LEASE
                if i % 5 == 4
                else KillPoint(f"{delay:.2f}s after creating", line="^creating ", delay=delay)
            )
            plans.append(Trial(point, new_keys and i % 2 == 1))
        with ThreadPoolExecutor(place.workers) as pool:
            running = [pool.submit(kill_trial, place, strategy, plan) for plan in plans]
            done: list[Trial] = []
            for future in running:
                try:
                    done.append(future.result())
                except Exception as e:
                    row.violations.append(f"a trial broke: {type(e).__name__}: {e}")
        row.runs += sum(len(t.attempts) for t in done)
        row.violations += [v for t in done for v in t.violations]
        killed = sum(t.attempts[0].killed for t in done)
        reruns = Counter(f"exit {t.attempts[1].code}" for t in done)
        expired = sum("over (expired)" in t.attempts[1].stderr for t in done)
        row.outcome = (
            f"{killed}/{len(plans)} killed; reruns "
            + ", ".join(f"{what} x{n}" for what, n in sorted(reruns.items()))
            + f", {expired} after the lease expired"
        )

    return timed(row, body)


# --- rollbacks in the middle of a rolling step ------------------------------------------


def rollback_row(place: Place, how: str) -> Row:
    what = "--timeout" if how == "timeout" else "SIGTERM"
    row = Row(f"{what} in a rolling step, --rollback-on-failure", place.name)

    def body(row: Row) -> None:
        with world(place.factory) as w:
            attempt = rollback_in_step(w, how)
            row.runs = 1
            rolled = (attempt.result or {}).get("rolled_back")
            row.outcome = f"exit {attempt.code}, rolled_back: {json.dumps(rolled)}"
            row.violations += w.violations()
            if attempt.code != 1 or rolled is not True:
                row.violations.append(f"expected exit 1 and rolled_back: true\n{attempt.stderr}")

    return timed(row, body)


# --- a cluster that stops answering -------------------------------------------------------


@contextlib.contextmanager
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A server on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], held
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        listener.close()


def hung_row(provider: str, how: str) -> Row:
    """`--timeout 5s` against a cluster that never answers ends by ~6 s with exit 4 or
    1; SIGTERM ends it within 3 s. Either way its result is written."""
    what = "--timeout 5s" if how == "timeout" else "SIGTERM"
    row = Row(f"hung cluster, {what}", provider, runs=1)

    def body(row: Row) -> None:
        with silent_server() as (port, held), tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
            env["PYTHONPATH"] = os.pathsep.join(map(str, PATHS))
            if provider == "marathon":
                where = ["--marathon-url", f"http://127.0.0.1:{port}"]
                env["DCOS_ACS_TOKEN"] = TOKEN
            else:
                where = ["--provider", provider]
                env["DOCKER_HOST"] = f"tcp://127.0.0.1:{port}"
            output = Path(tmp) / "result.json"
            timeout = "5s" if how == "timeout" else "10m"
            process = subprocess.Popen(
                [sys.executable, "-m", "treadle", "deploy", "--cluster", CLUSTER]
                + ["--image", "web:1", *where, "--timeout", timeout, "--output", str(output)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            started = time.monotonic()
            if how == "sigterm":
                while not held and process.poll() is None:
                    time.sleep(0.05)
                time.sleep(0.5)  # well inside its first request
                started = time.monotonic()
                process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=60)
            took = time.monotonic() - started
            row.outcome = f"exit {process.returncode} in {took:.1f}s"
            limit, allowed = (6.0, (1, 4)) if how == "timeout" else (3.0, (1,))
            if took > limit or process.returncode not in allowed:
                row.violations.append(f"{what}: exit {process.returncode} after {took:.1f}s")
            result = json.loads(output.read_text()) if output.exists() else {}
            if not result.get("error"):
                row.violations.append(f"{what}: no result with an error was written")
            else:
                row.outcome += ", result written"
            if TOKEN in stderr + json.dumps(result):
                row.violations.append(f"{what}: the token was printed")

    return timed(row, body)


def stalled_after_create_row(timeout: float = 5.0) -> Row:
    """The emulator stops answering once the deploy has created its group: `--timeout`
    ends it with exit 1 (something changed), its result naming the group, within a
    second and a half plus the grace the cluster lease's release has of its own
    (RELEASE_SECONDS)."""
    row = Row(f"cluster hangs after create, --timeout {timeout:g}s", "marathon", runs=1)

    def body(row: Row) -> None:
        release, created = threading.Event(), threading.Event()

        def hang(request: Request) -> Response | None:
            if created.is_set():
                release.wait(60)
                return Response(503, {"message": "stopped answering"})
            made = request.body.get("id", "") if isinstance(request.body, dict) else ""
            if request.method == "POST" and made.endswith("-v001"):
                created.set()
            return None

        with tempfile.TemporaryDirectory() as tmp, marathon() as backend:
            backend.seed(None)  # type: ignore[arg-type]
            backend.emulator.faults.append(hang)
            output = Path(tmp) / "result.json"
            env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
            started = time.monotonic()
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "treadle", "deploy", "--cluster", CLUSTER]
                    + ["--image", "web:1", "--strategy", "red-black", "--timeout", f"{timeout}s"]
                    + [*backend.cli, "--output", str(output)],
                    capture_output=True,
                    text=True,
                    env={**env, **backend.env, "PYTHONPATH": os.pathsep.join(map(str, PATHS))},
                    timeout=60,
                )
            finally:
                release.set()
            took = time.monotonic() - started
            result = json.loads(output.read_text()) if output.exists() else {}
            named = result.get("server_group")
            row.outcome = f"exit {done.returncode} in {took:.1f}s, names {named}"
            late = took > timeout + 1.5 + RELEASE_SECONDS
            if done.returncode != 1 or late or named != f"{CLUSTER}-v001":
                row.violations.append(f"{row.outcome}:\n{done.stderr}")

    return timed(row, body)


# --- which rows ---------------------------------------------------------------------------


@contextlib.contextmanager
def places(engines: bool = True) -> Iterator[tuple[list[Place], list[str]]]:
    """The backends here, and why any is missing; the image tags the engine rows made
    are removed afterwards."""
    found = [Place("marathon", marathon, workers=8)]
    if not engines:
        yield found, []
        return
    try:
        from treadle.providers.engine.connection import connect

        api = connect()
    except Exception as e:
        yield found, [f"docker, swarm: {e}"]
        return
    absent = [i for i in ("treadle-test/busybox:1", "treadle-test/busybox:2") if not api.images(i)]
    if absent:
        yield found, [f"docker, swarm: images {absent} missing (run .ci/docker-setup)"]
        return
    images = EngineImages(api)
    missing: list[str] = []
    found.append(Place("docker", lambda: engine("docker", api, images), workers=3))
    if (api.info().get("Swarm") or {}).get("LocalNodeState") == "active":
        found.append(Place("swarm", lambda: engine("swarm", api, images), workers=2))
    else:
        missing.append("swarm: the engine is not in a swarm")
    try:
        yield found, missing
    finally:
        images.remove()
        api.close()


TRIALS = {"marathon": 20, "docker": 6, "swarm": 4}
QUICK_TRIALS = {"marathon": 3, "docker": 1, "swarm": 1}


def rows(places: Sequence[Place], quick: bool, seed: int) -> list[Spec]:
    rng = random.Random(seed)
    specs: list[Spec] = []
    for place in places:
        for jobs in (2,) if quick else (2, 5):
            for strategy in STRATEGIES:
                for keys in (True, False):
                    label = f"{jobs} at once {strategy}{' keyed' if keys else ''}"
                    run = partial(concurrency_row, place, strategy, jobs, keys)
                    specs.append(Spec(label, place.name, run))
    for place in places:
        trials = (QUICK_TRIALS if quick else TRIALS)[place.name]
        for strategy in STRATEGIES:
            seeded = random.Random(rng.random())
            run = partial(kill_row, place, strategy, trials, seeded, new_keys=trials > 1)
            specs.append(Spec(f"kill {strategy}", place.name, run))
    for how in ("timeout", "sigterm"):
        specs.append(Spec(f"rollback {how}", "marathon", partial(rollback_row, places[0], how)))
    for provider in ("marathon", "docker"):
        for how in ("timeout", "sigterm"):
            specs.append(Spec(f"hung {how}", provider, partial(hung_row, provider, how)))
    specs.append(Spec("hung after create", "marathon", stalled_after_create_row))
    return specs


def ci_rows() -> list[Spec]:
    """What CI runs of the table: the emulator only, seconds a row."""
    place = Place("marathon", marathon, workers=2)
    kill = partial(kill_row, place, "rolling-red-black", 2, random.Random(7), new_keys=False)
    return [
        Spec(
            "2 at once red-black keyed",
            "marathon",
            partial(concurrency_row, place, "red-black", 2, True),
        ),
        Spec(
            "2 at once highlander",
            "marathon",
            partial(concurrency_row, place, "highlander", 2, False),
        ),
        Spec("kill rolling-red-black", "marathon", kill),
        Spec("rollback sigterm", "marathon", partial(rollback_row, place, "sigterm")),
        Spec("hung timeout", "marathon", partial(hung_row, "marathon", "timeout")),
        Spec("hung sigterm", "marathon", partial(hung_row, "marathon", "sigterm")),
    ]


def print_rows(table: Sequence[Row], out: Any = sys.stdout) -> None:
    width = max(len(r.scenario) for r in table)
    outcome = max(len(r.outcome) for r in table)
    print(
        f"{'scenario':<{width}}  {'backend':<8} {'runs':>4}  {'outcome':<{outcome}}  "
        f"{'violations':>10} {'time':>7}",
        file=out,
    )
    for r in table:
        print(
            f"{r.scenario:<{width}}  {r.backend:<8} {r.runs:>4}  {r.outcome:<{outcome}}  "
            f"{len(r.violations):>10} {r.seconds:>6.1f}s",
            file=out,
        )
