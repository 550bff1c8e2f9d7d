"""Real treadle processes racing and dying on one cluster, and what the cluster must look
like while and after they do.

A `World` is one cluster (`web-prod`) in a region of its own on a backend (the Marathon
emulator, a Docker engine, a Swarm: tests/backends.py), seeded with one server group of
SIZE instances. Jobs are `treadle deploy` processes (`python -m treadle`, the tree's own
code through PYTHONPATH), each with its own result file and its own image, so that every
server group says which job made it (its image) and when (its created-at label). A
job's attempt can be killed (SIGKILL) at a chosen point: a line on its stderr, a state of
the cluster, or a delay; a rerun is another attempt of the same job, with its run key or
a new one.

The cluster is read through the provider all along (a monitor thread) and at once when
an attempt ends (with health); `World.violations()` then checks:

1. every attempt that exits 0 names a server group that, as it exits, exists, is
   enabled, runs its own image and is healthy at the size the result says, which is the
   cluster's capacity; its `previous_server_group` is an older group (the world always
   has one) and `disabled_server_groups` is what is disabled by its group;
2. no result names a server group that another job (or another run key) created, and
   a failed attempt names any group it made and leaves;
3. no attempt's fresh group is disabled, destroyed or shrunk while that attempt runs
   (attempts that rolled themselves back excepted);
4. once all attempts end: the serving capacity (healthy instances of enabled groups)
   is what it was before (strategy none: that plus each job's group), every group's
   records say the full size, and no disabled group still runs anything;
5. no cluster lease record is left;
6. no secret, no traceback in any output, and every attempt that was not killed wrote
   its result.

Used by tests/on_*/test_safety.py and benchmarks/reliability.py (through
tests/safety_table.py).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from treadle.naming import try_parse_server_group
from treadle.providers.base import Health, Provider, ServerGroup
from treadle.stages.records import capacity, disabled_by

CLUSTER = "web-prod"
SIZE = 4
REPLACING = ("highlander", "red-black", "rolling-red-black")
STRATEGIES = ("none", *REPLACING)
# The tree's own code, for the processes too (an editable install may point elsewhere).
PATHS = [Path(__file__).resolve().parent.parent / "src", Path(__file__).resolve().parent]
# Variables of the machine running the tests that must not steer a job.
FOREIGN = ("TREADLE_", "DCOS_", "GITHUB_", "GITLAB_", "CI_", "BUILD_TAG", "DOCKER_HOST")


class Backend(Protocol):
    """Where a world's cluster lives (tests/backends.py)."""

    name: str
    region: str
    # The connection flags of every job, and what its environment adds.
    cli: list[str]
    env: dict[str, str]
    # Must never appear in any output.
    secrets: tuple[str, ...]
    # The spec file each job deploys with (health-checked), and how often to look.
    spec: dict[str, Any]
    poll: float
    # How long a job may take, start to end (a --timeout).
    timeout: str

    def open(self) -> Provider: ...

    def image(self, job: int) -> str:
        """The image of job `job`: a different one for each job."""

    def seed(self, world: World) -> None:
        """Make the cluster's first server group: image(0), SIZE instances, healthy."""

    def lease_records(self) -> list[str]:
        """The cluster lease records (and claims) of the world's region."""


@dataclass
class Snapshot:
    at: float  # time.monotonic()
    groups: dict[str, ServerGroup]
    # Each group's health, when asked for.
    health: dict[str, Health] = field(default_factory=dict)


@dataclass
class Job:
    """One deploy as a pipeline means it: an image, a strategy, maybe a run key; run once
    or again after a kill (attempts)."""

    number: int
    image: str
    strategy: str
    run_key: str | None
    args: tuple[str, ...] = ()
    attempts: list[Attempt] = field(default_factory=list)


class Attempt:
    """One `treadle deploy` process of a job."""

    def __init__(self, world: World, job: Job, run_key: str | None, args: Sequence[str]) -> None:
        self.world, self.job, self.run_key = world, job, run_key
        n = len(job.attempts) + 1
        self.name = f"job{job.number}.{n}"
        self.output = world.folder / f"{self.name}.json"
        words = [
            sys.executable,
            "-m",
            "treadle",
            "deploy",
            "--cluster",
            CLUSTER,
            "--region",
            world.backend.region,
            "--image",
            job.image,
            "--strategy",
            job.strategy,
            "--spec",
            str(world.spec_file),
            "--output",
            str(self.output),
            *world.backend.cli,
            *job.args,
            *args,
        ]
        if "--timeout" not in words:
            words += ["--timeout", world.backend.timeout]
        if run_key:
            words += ["--run-key", run_key]
        self.argv = words
        self.lines: list[tuple[float, str]] = []
        self.stdout = ""
        self.code: int | None = None
        self.killed = False
        self.signalled: str | None = None
        self.end: Snapshot | None = None
        self.unread = ""
        self._changed = threading.Condition()
        self._ended = threading.Event()

    # --- running ------------------------------------------------------------------------

    def start(self) -> Attempt:
        self.started = time.monotonic()
        self.started_wall = datetime.now(UTC)
        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env.update(self.world.backend.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*map(str, PATHS), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            self.argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
            cwd=self.world.folder,
        )
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        assert self.process.stderr is not None and self.process.stdout is not None
        out = threading.Thread(target=lambda: setattr(self, "stdout", self.process.stdout.read()))
        out.start()
        for line in self.process.stderr:
            with self._changed:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._changed.notify_all()
        out.join()
        self.process.stdout.close()
        self.process.stderr.close()
        self.code = self.process.wait()
        self.ended_at = time.monotonic()
        self.ended_wall = datetime.now(UTC)
        # The cluster as this attempt leaves it: read at once, before the next job can
        # change it (that one must first make a group of its own and see it healthy).
        try:
            self.end = self.world.observe(health=True)
        except Exception as e:  # reported by the checks
            self.unread = f"{type(e).__name__}: {e}"
        with self._changed:
            self._ended.set()
            self._changed.notify_all()

    def wait_line(self, pattern: str, timeout: float = 60.0) -> float | None:
        """When a stderr line matching `pattern` (a regex) came; None when the attempt
        ended (or `timeout` passed) without one."""
        regex = re.compile(pattern)
        end = time.monotonic() + timeout
        with self._changed:
            while True:
                for at, line in self.lines:
                    if regex.search(line):
                        return at
                left = end - time.monotonic()
                if self._ended.is_set() or left <= 0:
                    return None
                self._changed.wait(left)

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            self.killed = sig == signal.SIGKILL
            self.signalled = sig.name
            self.process.send_signal(sig)

    def wait(self, timeout: float = 300.0) -> Attempt:
        if not self._ended.wait(timeout):
            self.process.kill()
            self._ended.wait(30)
            raise AssertionError(f"{self.name} did not end within {timeout:g}s:\n{self.stderr}")
        return self

    @property
    def running(self) -> bool:
        return not self._ended.is_set()

    # --- what it left -------------------------------------------------------------------

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    @property
    def result(self) -> dict[str, Any] | None:
        try:
            loaded: dict[str, Any] = json.loads(self.output.read_text())
        except (OSError, ValueError):
            return None
        return loaded

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started

    def __repr__(self) -> str:
        return f"<{self.name} {self.job.strategy} exit {self.code}>"


class World:
    """One cluster of one backend, the jobs deploying to it, and what was seen of it."""

    def __init__(self, backend: Backend, folder: Path, spec: dict[str, Any] | None = None) -> None:
        self.backend = backend
        self.folder = folder
        self.spec_file = folder / "spec.json"
        self.spec_file.write_text(json.dumps(spec if spec is not None else backend.spec))
        self.jobs: list[Job] = []
        self.snapshots: list[Snapshot] = []
        self.key = uuid.uuid4().hex[:6]
        self._provider = backend.open()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self.before: Snapshot | None = None
        self.final: Snapshot | None = None

    def __enter__(self) -> World:
        self.backend.seed(self)
        self.before = self.observe(health=True)
        self._monitor = threading.Thread(target=self._watch, name="monitor", daemon=True)
        self._monitor.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join()
        for job in self.jobs:
            for attempt in job.attempts:
                if attempt.running:
                    attempt.process.kill()
                    attempt.wait(30)
        self._provider.close()

    # --- jobs ---------------------------------------------------------------------------

    def job(self, strategy: str, *, run_key: bool = True, args: Sequence[str] = ()) -> Job:
        number = len(self.jobs) + 1
        key = f"w{self.key}-job{number}" if run_key else None
        job = Job(number, self.backend.image(number), strategy, key, tuple(args))
        self.jobs.append(job)
        return job

    def start(self, job: Job, *, new_run_key: bool = False, args: Sequence[str] = ()) -> Attempt:
        """An attempt of `job`: its first, or a rerun (with its run key, or a new one)."""
        key = job.run_key
        if new_run_key:
            key = f"w{self.key}-job{job.number}-{len(job.attempts) + 1}"
        attempt = Attempt(self, job, key, args)
        job.attempts.append(attempt)
        return attempt.start()

    def attempts(self) -> list[Attempt]:
        return [a for job in self.jobs for a in job.attempts]

    def settle(self, timeout: float = 300.0) -> Snapshot:
        """Wait for every attempt to end, then read the cluster as they left it."""
        for attempt in self.attempts():
            attempt.wait(timeout)
        self.final = self.observe(health=True)
        return self.final

    # --- reading the cluster ------------------------------------------------------------

    def observe(self, health: bool = False) -> Snapshot:
        with self._lock:
            provider = self._provider
            for tries in range(5):
                try:
                    groups = {
                        g.name: g
                        for g in provider.server_groups(self.backend.region)
                        if g.cluster.name == CLUSTER
                    }
                    read = (
                        {name: provider.health(g) for name, g in groups.items()} if health else {}
                    )
                    break
                except Exception:  # a group went while it was read: read again
                    if tries == 4:
                        raise
                    time.sleep(0.1)
            snapshot = Snapshot(time.monotonic(), groups, read)
            self.snapshots.append(snapshot)
            return snapshot

    def _watch(self) -> None:
        while not self._stop.wait(self.backend.poll):
            try:
                self.observe()
            except Exception:
                pass  # the next look will do

    def until(
        self, seen: Callable[[Snapshot], bool], timeout: float = 60.0, every: float = 0.05
    ) -> bool:
        """Read the cluster until `seen` holds (a kill point in the cluster's state)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if seen(self.observe()):
                    return True
            except Exception:
                pass
            time.sleep(every)
        return False

    def group_of(self, job: Job, snapshot: Snapshot) -> ServerGroup | None:
        """The newest group of `job`'s image in `snapshot`."""
        mine = [g for g in snapshot.groups.values() if g.image == job.image]
        return max(mine, key=lambda g: g.sequence, default=None)

    # --- the invariants -----------------------------------------------------------------

    def violations(self) -> list[str]:
        return check(self)


def when(group: ServerGroup) -> datetime | None:
    if not group.created_at:
        return None
    try:
        return datetime.fromisoformat(group.created_at.replace("Z", "+00:00"))
    except ValueError:
        return None


def creator(world: World, name: str) -> Attempt | None:
    """The attempt that created server group `name`: its image, and its created-at label
    falls within the attempt's life."""
    group = next((s.groups[name] for s in world.snapshots if name in s.groups), None)
    if group is None:
        return None
    made = when(group)
    for attempt in world.attempts():
        end = getattr(attempt, "ended_wall", None) or datetime.now(UTC)
        if (
            group.image == attempt.job.image
            and made is not None
            and attempt.started_wall <= made <= end
        ):
            return attempt
    return None


def allowed_to_name(attempt: Attempt, made_by: Attempt | None) -> bool:
    """An attempt names only what it made, or what an earlier attempt of the same run
    key and image made (a rerun carrying on)."""
    if made_by is None:
        return False
    if made_by is attempt:
        return True
    return (
        attempt.run_key is not None
        and made_by.run_key == attempt.run_key
        and made_by.job is attempt.job
    )


def check(world: World) -> list[str]:
    found: list[str] = []
    assert world.before is not None and world.final is not None, "settle() first"
    for attempt in world.attempts():
        found += check_attempt(world, attempt)
    found += check_end(world)
    return found


def check_attempt(world: World, attempt: Attempt) -> list[str]:
    found: list[str] = []
    who = attempt.name
    result = attempt.result
    everything = attempt.stdout + attempt.stderr + (json.dumps(result) if result else "")
    for secret in world.backend.secrets:
        if secret in everything:
            found.append(f"{who}: a secret in its output")
    if "Traceback" in attempt.stderr:
        found.append(f"{who}: a traceback:\n{attempt.stderr}")
    if attempt.killed:
        return found + check_untouched(world, attempt)
    if result is None:
        return found + [f"{who}: exit {attempt.code} without a result"]
    named = result.get("server_group")
    if named:
        made_by = creator(world, named)
        if not allowed_to_name(attempt, made_by):
            by = made_by.name if made_by else "no job of this world"
            found.append(f"{who}: its result names {named}, made by {by}")
    if attempt.code == 0:
        found += check_success(world, attempt, result)
    elif attempt.end is not None:
        # A failed deploy may leave a group it made only when its result names it.
        unnamed = [
            g.name
            for g in attempt.end.groups.values()
            if g.name != named and creator(world, g.name) is attempt
        ]
        found += [
            f"{who}: exit {attempt.code} leaving {g}, which its result does not name"
            for g in unnamed
        ]
    return found + check_untouched(world, attempt)


def check_success(world: World, attempt: Attempt, result: dict[str, Any]) -> list[str]:
    """As it exits 0: its group exists, is enabled, runs its own image, healthy at the
    size its result says, which is the cluster's capacity."""
    who, named = attempt.name, result.get("server_group")
    if attempt.end is None:
        return [f"{who}: the cluster could not be read as it exited ({attempt.unread})"]
    group = attempt.end.groups.get(str(named))
    if group is None:
        return [f"{who}: exits 0 naming {named}, which does not exist"]
    found = []
    health = attempt.end.health[group.name]
    if not group.enabled:
        found.append(f"{who}: exits 0 naming {named}, which is disabled")
    if group.image != attempt.job.image:
        found.append(f"{who}: exits 0 naming {named}, which runs {group.image}")
    said = result.get("instances")
    expected = expected_size(attempt)
    if said != expected or not (health.ok and health.healthy == health.running == said):
        found.append(
            f"{who}: exits 0 saying {named} has {said} instances (the cluster's size "
            f"is {expected}); it has {health.describe()}"
        )
    previous = result.get("previous_server_group")
    older = try_parse_server_group(str(previous)) if previous else None
    if older is None or older.sequence >= group.sequence:
        found.append(f"{who}: previous_server_group {previous!r} for {named}")
    if attempt.job.strategy in ("red-black", "rolling-red-black"):
        by_it = {g.name for g in attempt.end.groups.values() if disabled_by(g) == named}
        said_disabled = set(result.get("disabled_server_groups") or [])
        if said_disabled != by_it:
            found.append(
                f"{who}: says it disabled {sorted(said_disabled)}, the cluster says "
                f"{sorted(by_it)} were"
            )
    return found


def expected_size(attempt: Attempt) -> int:
    words = [*attempt.job.args, *attempt.argv]
    if "--instances" in words:
        return int(words[words.index("--instances") + 1])
    return SIZE


def check_untouched(world: World, attempt: Attempt) -> list[str]:
    """While the attempt runs, its fresh group (made or carried on by it) is never
    disabled, destroyed or shrunk. An attempt that rolled back (or was told to) touches
    its own group itself."""
    result = attempt.result or {}
    if "rolled_back" in result or (attempt.signalled and not attempt.killed):
        return []
    window = [s for s in world.snapshots if attempt.started <= s.at < attempt.ended_at]
    name = result.get("server_group")
    if not name:  # killed, or failed before naming one: the group its image made meanwhile
        made = [
            g.name
            for s in window
            for g in s.groups.values()
            if g.image == attempt.job.image and creator(world, g.name) is attempt
        ]
        name = made[0] if made else None
    if not name:
        return []
    if attempt.end is not None and not attempt.killed:
        window.append(attempt.end)
    seen: ServerGroup | None = None
    for i, snapshot in enumerate(window):
        group = snapshot.groups.get(name)
        if group is None:
            # A provider that rewrites a group's records (Docker replaces the container
            # holding them) may leave it out of a listing: destroyed means for good. A
            # kill may cut such a rewrite short: that is the attempt's own doing.
            gone = not any(name in later.groups for later in window[i:])
            if seen is not None and gone and not attempt.killed:
                return [f"{attempt.name}: {name} was destroyed while it ran"]
            continue
        if not group.enabled:
            return [f"{attempt.name}: {name} was disabled while it ran"]
        if seen is not None and group.instances < seen.instances:
            return [
                f"{attempt.name}: {name} shrank from {seen.instances} to {group.instances} "
                "while it ran"
            ]
        seen = group
    return []


def serving(snapshot: Snapshot) -> int:
    return sum(snapshot.health[g.name].healthy for g in snapshot.groups.values() if g.enabled)


def check_end(world: World) -> list[str]:
    """Once every attempt has ended: capacity, records, nothing half-disabled, no lease."""
    assert world.before is not None and world.final is not None
    final, found = world.final, []
    before = serving(world.before)
    strategies = {job.strategy for job in world.jobs}
    now = serving(final)
    if strategies <= set(REPLACING):
        if now != before:
            found.append(f"serving capacity {before} before, {now} after: {describe(final)}")
    else:
        succeeded = {
            str(a.result["server_group"])
            for a in world.attempts()
            if a.code == 0 and a.result and a.result.get("server_group")
        }
        if now < before + SIZE * len(succeeded):
            found.append(
                f"serving capacity {before} before and {len(succeeded)} new groups, "
                f"{now} after: {describe(final)}"
            )
    sized = any("--instances" in a.argv for a in world.attempts())
    for group in final.groups.values():
        if not sized and capacity(group) != SIZE:
            found.append(f"{group.name} records {capacity(group)}, not {SIZE}: {group.labels}")
        if not group.enabled and final.health[group.name].running:
            found.append(
                f"{group.name} is disabled and still runs {final.health[group.name].running}"
            )
    left = world.backend.lease_records()
    if left:
        found.append(f"lease records left: {left}")
    return found


def describe(snapshot: Snapshot) -> str:
    return ", ".join(
        f"{g.name} {g.image} {'enabled' if g.enabled else 'disabled'} "
        f"{snapshot.health[g.name].describe() if g.name in snapshot.health else g.instances}"
        for g in sorted(snapshot.groups.values(), key=lambda g: g.sequence)
    )


# --- scenarios ------------------------------------------------------------------------


@dataclass(frozen=True)
class KillPoint:
    """Where an attempt is stopped: once a stderr line matches `line` (a regex), once
    the cluster shows `state`, or once `wait` returns, then `delay` seconds more; with
    none of them, `delay` seconds after it started."""

    label: str
    line: str | None = None
    state: Callable[[Job, Snapshot], bool] | None = None
    delay: float = 0.0
    # Or a wait of its own (a backend's events, quicker than reading the cluster); False
    # when the point never came.
    wait: Callable[[Attempt], bool] | None = None


def its_group(job: Job, snapshot: Snapshot, instances: int = 0) -> bool:
    """The job's group exists (with at least `instances` instances)."""
    return any(g.image == job.image and g.instances >= instances for g in snapshot.groups.values())


# An enabled group at 0: the rolling deploy has not grown it yet.
ONCE_CREATED = KillPoint("once its group exists", state=its_group)
# The 25% step is done (the old group is down to 3 of 4); the 50% one has begun.
AFTER_FIRST_STEP = KillPoint("after the first rolling step", line=r"^resize \S+ to 2 \(")
# Red-black: the new group is part-way up.
NEW_GROUP_AT_3 = KillPoint(
    "while its group has 3 of 4", state=lambda job, s: its_group(job, s, instances=3)
)
WHILE_DISABLING = KillPoint("while disabling", line=r"^disable ")


def holds_the_lease(attempt: Attempt) -> bool:
    """Its lease record exists (it is about to read the cluster and create)."""
    while attempt.running:
        if attempt.world.backend.lease_records():
            return True
        time.sleep(0.01)
    return False


HOLDING_THE_LEASE = KillPoint("holding only the lease", wait=holds_the_lease)


def stop_at(world: World, attempt: Attempt, point: KillPoint, sig: signal.Signals) -> bool:
    """Send `sig` at `point`; whether the attempt was still running then."""
    if point.line is not None:
        if attempt.wait_line(point.line) is None:
            return False
    elif point.state is not None:
        state = point.state
        world.until(lambda s: state(attempt.job, s) or not attempt.running)
    elif point.wait is not None and not point.wait(attempt):
        return False
    time.sleep(point.delay)
    if not attempt.running:
        return False
    attempt.kill(sig)
    return True


def concurrent(
    world: World, strategy: str, jobs: int, run_keys: bool | Sequence[bool] = True
) -> list[Attempt]:
    """`jobs` deploys of `strategy` started at once, each with its own image; with a run
    key each, none, or (a sequence) as it says job by job."""
    keys = [run_keys] * jobs if isinstance(run_keys, bool) else list(run_keys)
    made = [world.job(strategy, run_key=key) for key in keys]
    attempts = [world.start(job) for job in made]
    world.settle()
    return attempts


def kill_and_rerun(
    world: World,
    strategy: str,
    point: KillPoint,
    *,
    new_run_key: bool = False,
    args: Sequence[str] = (),
) -> tuple[Attempt, Attempt]:
    """A deploy killed (SIGKILL) at `point`, then run again with its run key (it takes
    its lease over at once) or a new one (it waits for the dead lease to expire)."""
    job = world.job(strategy, args=args)
    first = world.start(job)
    stop_at(world, first, point, signal.SIGKILL)
    first.wait()
    rerun = world.start(job, new_run_key=new_run_key)
    world.settle()
    return first, rerun


def rollback_in_step(world: World, how: str) -> Attempt:
    """A rolling deploy with --rollback-on-failure that fails in the middle of a step
    after the old group shrank: `timeout` (its image turns unhealthy once the 25% step
    is underway, so the 50% step never gets healthy) or `sigterm` (a CI cancel while the
    old group shrinks to 2)."""
    args = ["--rollback-on-failure"]
    if how == "timeout":
        args += ["--timeout", "4s"]
    job = world.job("rolling-red-black", args=args)
    attempt = world.start(job)
    if how == "timeout":
        # The backend's own switch (the emulator's): instances started from now on fail.
        make_unhealthy = world.backend.make_unhealthy  # type: ignore[attr-defined]
        if attempt.wait_line(r"^resize \S+ to 3 \(") is not None:
            make_unhealthy(job.image)
    else:
        stop_at(
            world,
            attempt,
            KillPoint("shrinking to 2", line=r"^resize \S+-v000 to 2 \("),
            signal.SIGTERM,
        )
    world.settle()
    return attempt
