"""treadle's speed and footprint, measured on this machine and printed as one table.

    TREADLE_SHARED_DATA=../shared/data python benchmarks/bench.py   # about ten minutes
    python benchmarks/bench.py --quick                              # fewer repetitions

Every number comes from this run, against the emulators in tests/emulator served on
127.0.0.1 (the Marathon one with its event stream), with treadle run as CI runs it: a
fresh process per stage.

- start-up: `treadle --version` and `treadle deploy --help` against `python -c pass`.
- CPU: a deploy's own CPU time (whole process) against a plain httpx script sending the
  same Marathon requests (benchmarks/plain_deploy.py), from the same interpreter.
- tracing: a deploy sending its trace over OTLP/HTTP (to a receiver in this process)
  against the same deploy untraced: CPU and wall time of the whole process.
- the cluster lease: its requests and time where nobody else holds it, on each provider.
- stage overhead: deploy, resize and run-job, from the moment the emulator's deployment
  (or job run) finished to the moment treadle exited, with the requests each stage sent
  (the looks at the state while waiting in brackets) and what looking every second over
  the same wait would have sent; deploy once more with the event stream switched off
  (404), to show the polling fallback; and one longer rollout, closer to a real one.
- scale: find-image and deploy in a region holding the real 1000-app group dump (when
  TREADLE_SHARED_DATA is set) and a synthetic 10,000-app region: wall time, treadle's
  own share of it (the wall time less the time the emulator spent answering), and the
  peak memory of the treadle process.
- concurrency: one stage deploying three regions against the same stage with one.
- the container image's size (`docker image inspect treadle:ci`, built by .ci/build-image).
- zero downtime: requests through a real HAProxy while treadle changes the cluster behind
  it, on Docker and on Swarm (benchmarks/zero_downtime.py, which also runs alone).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import dockerish  # noqa: E402
from emulator import MarathonEmulator, MetronomeEmulator, Request  # noqa: E402
from emulator.server import HttpEmulator  # noqa: E402

# The interpreter that runs treadle: main() sets it (see treadle_python).
PYTHON = sys.executable
TREADLE = [PYTHON, "-m", "treadle"]
VENV = ROOT / "benchmarks" / ".venv"
# A deployment in these runs: tasks start after 1 s, pass their first health check 1 s
# later, and the deployment stays listed for 4 s; a job run lasts about as long.
DEPLOYMENT = {"deploy_seconds": 4.0, "task_start_seconds": 1.0, "health_seconds": 1.0}
JOB = {"step_seconds": 0.3, "run_seconds": 3.0}
# A rollout closer to a real one: tasks take 10 s to start and 10 s more to pass a
# health check, and the deployment lasts 30 s.
ROLLOUT = {"deploy_seconds": 30.0, "task_start_seconds": 10.0, "health_seconds": 10.0}
TARGET_LAG = 0.3
FAST = {"deploy_seconds": 0.05, "task_start_seconds": 0.05, "health_seconds": 0.05}
WEB = {
    "id": "/web-v000",
    "instances": 1,
    "container": {"type": "DOCKER", "docker": {"image": "web:1"}},
}


@dataclass
class Section:
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[str, ...]]


TABLE: list[Section] = []


def section(title: str, *columns: str) -> Section:
    TABLE.append(Section(title, columns, []))
    progress(title)
    return TABLE[-1]


def progress(line: str) -> None:
    print(f"  ... {line}", file=sys.stderr, flush=True)


def clean_env() -> dict[str, str]:
    """The environment of a CI step that sets no treadle options."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TREADLE_", "DCOS_", "GITHUB_", "GITLAB_", "OTEL_", "TRACEPARENT"))
    }


def run(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, env={**clean_env(), **(env or {})}
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return took, done


def seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 1 else f"{value:.2f} s"


# -- start-up ---------------------------------------------------------------------------


def treadle_python(given: str | None) -> tuple[str, str]:
    """The interpreter to run treadle with, and how to say which it is. By default a
    virtualenv holding treadle (installed editable, from this tree, with its providers'
    extras and tracing's) and its own dependencies only, made on first use: what `pip
    install 'treadle[dcos,otel]'` gives, without whatever else the machine's Python has (on
    some machines httpx then loads trio, click, pygments: 0.1-0.2 s more per start)."""
    if given:
        return given, given
    python = VENV / "bin" / "python"
    ready = (
        python.exists()
        and subprocess.run([python, "-c", "import docker, opentelemetry.sdk"]).returncode == 0
    )
    if not ready:
        progress(f"making {VENV.relative_to(ROOT)} (once): treadle and its dependencies only")
        made = subprocess.run(
            f"{sys.executable} -m venv {VENV} && {python} -m pip install -q -e '{ROOT}[dcos,otel]'",
            shell=True,
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            shutil.rmtree(VENV, ignore_errors=True)
            progress(f"could not make it ({made.stderr.strip()[-300:]}): using {sys.executable}")
            return sys.executable, f"{sys.executable} (no clean virtualenv could be made)"
    # pip compiles a package's modules when it installs it; an editable install leaves
    # that to the first run, which PYTHONDONTWRITEBYTECODE=1 (set on some machines and
    # images) turns into every run: 26 modules, 0.05 s per start here.
    subprocess.run([python, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    return str(python), f"{VENV.relative_to(ROOT)}: treadle and its own dependencies only"


def start_up(runs: int) -> None:
    table = section(f"start-up (median of {runs} runs)", "time", "vs python -c pass", "target")
    script = Path(PYTHON).parent / "treadle"
    entry = [str(script)] if script.exists() else TREADLE

    def median(command: list[str]) -> float:
        return statistics.median(run(command)[0] for _ in range(runs))

    python = median([PYTHON, "-c", "pass"])
    version = median([*entry, "--version"])
    help_ = median([*entry, "deploy", "--help"])
    table.rows += [
        ("python -c pass", seconds(python), "1.0x", ""),
        (
            "treadle --version",
            seconds(version),
            f"{version / python:.1f}x",
            f"< 0.15 s: {'met' if version < 0.15 else 'MISSED'}",
        ),
        (
            "treadle deploy --help",
            seconds(help_),
            f"{help_ / python:.1f}x",
            f"< 0.15 s: {'met' if help_ < 0.15 else 'MISSED'}",
        ),
    ]


# -- CPU: treadle against a plain script making the same requests ----------------------


def cpu_seconds(command: list[str], env: dict[str, str] | None = None) -> float:
    """User and system CPU of one run of `command` (waiting costs none)."""
    return cpu_and_wall(command, env)[0]


def cpu_and_wall(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """User and system CPU, and wall time, of one run of `command`."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, _ = run(command, env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), wall


def cpu(runs: int) -> None:
    """A deploy's own CPU time, whole process, against benchmarks/plain_deploy.py sending
    the same Marathon requests with httpx from the same interpreter, alternately."""
    table = section(
        f"CPU of one deploy, whole process (median of {runs} runs, alternating)",
        "CPU",
        "vs the plain script",
        "target",
    )
    script = str(ROOT / "benchmarks" / "plain_deploy.py")
    # The same script, kept from loading httpx's own command line as treadle is (click,
    # rich and pygments are installed with treadle's dependencies): the stricter baseline.
    lean = (
        "import runpy, sys; sys.modules['httpx._main'] = None; sys.argv = sys.argv[1:]; "
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    mine, plain, leaner = [], [], []
    with MarathonEmulator(**FAST) as emu:
        for n in range(runs):
            mine.append(
                cpu_seconds(
                    [*TREADLE, "deploy", "--app", "web", "--image", "web:1", "--instances", "3"]
                    + ["--no-events", "--marathon-url", emu.url]
                )
            )
            plain.append(cpu_seconds([PYTHON, script, emu.url, str(500 + 2 * n)]))
            leaner.append(cpu_seconds([PYTHON, "-c", lean, script, emu.url, str(501 + 2 * n)]))
    ours, base, lean_base = (statistics.median(x) for x in (mine, plain, leaner))
    table.rows += [
        ("plain httpx script", seconds(base), "1.00x", ""),
        ("the same, without httpx's CLI", seconds(lean_base), f"{lean_base / base:.2f}x", ""),
        (
            "treadle deploy --no-events",
            seconds(ours),
            f"{ours / base:.2f}x",
            f"<= 1.2x: {'met' if ours <= 1.2 * base else 'MISSED'}",
        ),
    ]


# -- tracing: a deploy sending its trace against the same deploy untraced --------------


def tracing(runs: int) -> None:
    """A deploy with OTEL_EXPORTER_OTLP_ENDPOINT set (its trace sent to a receiver in this
    process, tests/otlp.py) against the same deploy without, alternately: the whole
    process's CPU and wall time; the difference is the SDK's import, the spans and the
    export at the end."""
    from otlp import Receiver

    table = section(
        f"tracing: one deploy (median of {runs} runs, alternating)",
        "CPU",
        "wall",
        "spans sent",
        "cost of tracing (CPU, wall)",
    )
    deploy = [*TREADLE, "deploy", "--app", "web", "--image", "web:1", "--instances", "3"]
    off: list[tuple[float, float]] = []
    on: list[tuple[float, float]] = []
    with MarathonEmulator(**FAST) as emu, Receiver() as receiver:
        args = [*deploy, "--marathon-url", emu.url]
        for _ in range(runs):
            off.append(cpu_and_wall(args))
            on.append(cpu_and_wall(args, {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}))
        spans = len(receiver.spans()) / runs
    cpu_off, wall_off = (statistics.median(x) for x in zip(*off, strict=True))
    cpu_on, wall_on = (statistics.median(x) for x in zip(*on, strict=True))
    table.rows += [
        ("tracing off", seconds(cpu_off), seconds(wall_off), "-", ""),
        (
            "traced (OTLP/HTTP to 127.0.0.1)",
            seconds(cpu_on),
            seconds(wall_on),
            f"{spans:g}",
            f"+{seconds(cpu_on - cpu_off)}, +{seconds(wall_on - wall_off)}",
        ),
    ]


# -- the cluster lease on a cluster nobody else is changing ----------------------------


def lease_cost(runs: int) -> None:
    """Taking and releasing the cluster lease where nobody else holds it, in-process
    through each provider: its requests and its time (median)."""
    from treadle.console import Console
    from treadle.providers.registry import open_provider, settings_for
    from treadle.stages.lease import leases_of
    from treadle.stages.runtime import Runtime
    from treadle.waiting import Deadline

    table = section(
        f"the cluster lease, uncontended (median of {runs} takes and releases)",
        "requests",
        "time",
        "target",
    )

    def measure(name: str, settings: dict[str, Any], region: str, count: Callable[[], int]) -> None:
        provider = open_provider(
            name,
            settings_for(name, settings),
            deadline=Deadline(60),
            console=Console(quiet=True),
            request_timeout=30,
        )
        times, requests = [], []
        try:
            for _ in range(runs):
                rt = Runtime.tracking(provider, console=Console(quiet=True), deadline=Deadline(60))
                before, started = count(), time.perf_counter()
                leases_of(rt).take(region, "bench")
                rt.exits.close()
                times.append(time.perf_counter() - started)
                requests.append(count() - before)
        finally:
            provider.close()
        took, sent = statistics.median(times), statistics.median(requests)
        ok = sent <= 2 and took <= 0.05
        table.rows.append(
            (name, f"{sent:g}", seconds(took), f"<= 2 and 50 ms: {'met' if ok else 'MISSED'}")
        )

    with MarathonEmulator(**FAST) as emu:
        measure("marathon", {"marathon_url": emu.url}, "/", lambda: len(emu.requests))
    try:
        api = dockerish.connect()
    except Exception as e:  # noqa: BLE001 (no engine: say so in the table)
        table.rows.append(("docker, swarm", "-", "-", f"no Docker engine ({e})"))
        return
    sent = {"n": 0}
    original = type(api).send

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        sent["n"] += 1
        return original(self, *args, **kwargs)

    type(api).send = counting  # every call of every client of the engine
    try:
        region = "bench"
        measure("docker", {}, region, lambda: sent["n"])
        if (api.info().get("Swarm") or {}).get("LocalNodeState") == "active":
            measure("swarm", {}, region, lambda: sent["n"])
    finally:
        type(api).send = original
        dockerish.remove_region(api, region)
        api.close()


# -- stage overhead ---------------------------------------------------------------------


def timed_requests(emu: HttpEmulator) -> list[tuple[float, Request]]:
    """Every request the emulator receives from now on, with the moment it arrived."""
    seen: list[tuple[float, Request]] = []

    def note(request: Request) -> None:
        seen.append((time.monotonic(), request))

    emu.faults.append(note)
    return seen


@dataclass
class Scenario:
    """One stage against a fresh emulator: how to set it up, and which of its requests
    look at the state while it waits."""

    name: str
    start: Callable[[], HttpEmulator]
    args: Callable[[HttpEmulator], list[str]]
    finished_at: Callable[[HttpEmulator], float]
    is_look: Callable[[Request], bool]
    # Requests one look costs when polling (run-job reads the run's state and its log).
    per_look: int = 1


@dataclass
class Measured:
    lag: float
    requests: int
    looks: int
    # The same stage looking every second over the same wait.
    polled_requests: int
    polled_looks: int


def measure_stage(scenario: Scenario) -> Measured:
    emu = scenario.start()
    try:
        arrived = timed_requests(emu)
        run([*TREADLE, *scenario.args(emu)])
        exited = time.monotonic()
        finished = scenario.finished_at(emu)
    finally:
        emu.stop()
    looks = [t for t, r in arrived if scenario.is_look(r)]
    # Looking every second from the first look on: one look then, and one per second
    # until the first one after the finish; the stage's other requests as they were.
    polled_looks = math.ceil(finished - looks[0]) + 1
    polled = len(arrived) - len(looks) + scenario.per_look * polled_looks
    return Measured(exited - finished, len(arrived), len(looks), polled, polled_looks)


def marathon(
    timings: dict[str, float] = DEPLOYMENT, events: bool = True, app: dict[str, Any] | None = None
) -> Callable[[], HttpEmulator]:
    def start() -> HttpEmulator:
        emu = MarathonEmulator(**timings)
        emu.events_enabled = events
        emu.start()
        if app:
            emu.add_app(app)
        return emu

    return start


def metronome(
    run_seconds: float = JOB["run_seconds"], events: bool = True
) -> Callable[[], HttpEmulator]:
    def start() -> HttpEmulator:
        emu = MetronomeEmulator(**{**JOB, "run_seconds": run_seconds})
        emu.events_enabled = events
        emu.start()
        emu.script(
            "ci.bench",
            stdout="".join(f"step {n}\n" for n in range(5)) + "TREADLE_OUTPUT done=yes\n",
        )
        return emu

    return start


def deployment_end(emu: HttpEmulator) -> float:
    assert isinstance(emu, MarathonEmulator)
    return max(emu.deployments_finished_at())


def run_end(emu: HttpEmulator) -> float:
    assert isinstance(emu, MetronomeEmulator)
    return max(emu.runs_finished_at())


def app_look(request: Request) -> bool:
    return request.path.startswith("/v2/apps/web-v000") and "embed" in request.query


def job_look(request: Request) -> bool:
    """The run's state (and, once it ended, the job's history) and the log in its sandbox."""
    return request.path.startswith(("/v1/jobs/ci.bench/runs/", "/agent/")) or request.query.get(
        "embed"
    ) == ["history"]


def deploy_args(emu: HttpEmulator) -> list[str]:
    return [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:1",
        "--instances",
        "3",
        "--marathon-url",
        emu.url,
    ]


def run_job_args(emu: HttpEmulator) -> list[str]:
    return ["run-job", "--job-id", "ci.bench", "--cmd", "./bench", "--dcos-url", emu.url]


def run_job(name: str, start: Callable[[], HttpEmulator]) -> Scenario:
    # Each look by 1 s polling: the run's state, its stdout and its stderr.
    return Scenario(name, start, run_job_args, run_end, job_look, per_look=3)


STAGES = [
    Scenario("deploy", marathon(), deploy_args, deployment_end, app_look),
    Scenario(
        "resize",
        marathon(app=WEB),
        lambda emu: [
            "resize",
            "--server-group",
            "web-v000",
            "--instances",
            "3",
            "--marathon-url",
            emu.url,
        ],
        deployment_end,
        app_look,
    ),
    run_job("run-job", metronome()),
    Scenario(
        "deploy, event stream off (404)",
        marathon(events=False),
        deploy_args,
        deployment_end,
        app_look,
    ),
    run_job("run-job, event stream off (404)", metronome(events=False)),
]
LONGER = [
    Scenario("deploy", marathon(ROLLOUT), deploy_args, deployment_end, app_look),
    Scenario(
        "deploy, event stream off (404)",
        marathon(ROLLOUT, events=False),
        deploy_args,
        deployment_end,
        app_look,
    ),
    run_job("run-job", metronome(run_seconds=30.0)),
    run_job("run-job, event stream off (404)", metronome(run_seconds=30.0, events=False)),
]
# Without an event stream there is nothing to react to: these rows show the fallback.
FALLBACK = "event stream off"


def stage_overhead(title: str, scenarios: list[Scenario], runs: int) -> None:
    table = section(
        title,
        "exit after finish",
        "(min-max)",
        "requests (looks)",
        "1 s polling: requests (looks)",
        "target: median < 0.3 s",
    )
    for scenario in scenarios:
        progress(scenario.name)
        measured = [measure_stage(scenario) for _ in range(runs)]
        lags = [m.lag for m in measured]
        lag = statistics.median(lags)
        counts = {
            field: f"{statistics.median(getattr(m, field) for m in measured):.0f}"
            for field in ("requests", "looks", "polled_requests", "polled_looks")
        }
        table.rows.append(
            (
                scenario.name,
                seconds(lag),
                f"({min(lags):.2f}-{max(lags):.2f})",
                f"{counts['requests']} ({counts['looks']})",
                f"{counts['polled_requests']} ({counts['polled_looks']})",
                "(fallback: no target)"
                if FALLBACK in scenario.name
                else "met"
                if lag < TARGET_LAG
                else "MISSED",
            )
        )


# -- scale ------------------------------------------------------------------------------


def synthetic_region(apps: int) -> dict[str, Any]:
    return {
        "id": "/big",
        "apps": [
            {
                "id": f"/big/svc{i:05d}-prod-v{i % 1000:03d}",
                "instances": 1,
                "cmd": "sleep 1000",
                "labels": {"treadle.created-at": f"2026-01-01T00:00:00.{i % 1000:03d}Z"},
                "container": {
                    "type": "DOCKER",
                    "docker": {"image": f"registry.example/svc{i:05d}:1"},
                },
            }
            for i in range(apps)
        ],
    }


def with_peak_memory(command: list[str]) -> tuple[float, float | None]:
    """Wall time, and the peak resident memory of the process in MiB (GNU time)."""
    if not Path("/usr/bin/time").exists():
        return run(command)[0], None
    took, done = run(["/usr/bin/time", "-f", "%M", *command])
    return took, int(done.stderr.strip().splitlines()[-1]) / 1024


def scale(runs: int) -> None:
    table = section(
        f"scale (median of {runs} runs; the emulator's deployments take 0.1 s)",
        "wall",
        "treadle's share",
        "peak memory",
        "target",
    )
    regions: list[tuple[str, dict[str, Any]]] = []
    shared = os.environ.get("TREADLE_SHARED_DATA")
    if shared:
        dump = json.loads((Path(shared) / "marathon/real-groups/155_1000.json").read_text())
        regions.append(("real 1000-app group dump", dump))
    else:
        table.rows.append(
            ("real 1000-app group dump", "skipped", "TREADLE_SHARED_DATA not set", "", "")
        )
    regions.append(("synthetic 10,000-app region", synthetic_region(10_000)))
    for name, group in regions:
        progress(f"loading the {name}")
        with MarathonEmulator(**FAST) as emu:
            emu.load_groups(group)
            region = str(group["id"])
            emu.add_app({**WEB, "id": f"{region}/web-prod-v000"})
            base = ["--region", region, "--marathon-url", emu.url]
            for stage, args in (
                ("find-image", ["find-image", "--cluster", "web-prod"]),
                ("deploy", ["deploy", "--cluster", "web-prod", "--image", "web:2"]),
            ):
                walls: list[float] = []
                owns: list[float] = []
                memories: list[float | None] = []
                for _ in range(runs):
                    answering = emu.answering_seconds
                    wall, memory = with_peak_memory([*TREADLE, *args, *base])
                    walls.append(wall)
                    # The emulator's time answering is the cluster's, not treadle's.
                    owns.append(wall - (emu.answering_seconds - answering))
                    memories.append(memory)
                own = statistics.median(owns)
                target = ""
                if stage == "find-image" and "10,000" in name:
                    target = f"treadle's share < 1 s: {'met' if own < 1 else 'MISSED'}"
                table.rows.append(
                    (
                        f"{stage}, {name}",
                        seconds(statistics.median(walls)),
                        seconds(own),
                        "?" if None in memories else f"{max(m or 0 for m in memories):.0f} MiB",
                        target,
                    )
                )


# -- the local Docker engine ------------------------------------------------------------

# The Docker tests' image (.ci/docker-setup builds it), and their served spec.
ENGINE_IMAGE, ENGINE_SPEC = dockerish.IMAGE, dockerish.SERVED


def engine_events(api: Any, since: float, until: float, label: str) -> list[dict[str, Any]]:
    """The engine's container events between two moments, of containers with `label`."""
    found = api.events(
        since=int(since), until=int(until) + 1, filters={"type": ["container"], "label": [label]}
    )
    events = [json.loads(line) for line in b"".join(found).splitlines() if line.strip()]
    return [e for e in events if since <= e["timeNano"] / 1e9 <= until]


def on_docker(runs: int) -> None:
    """deploy and run-job on the local engine: from the moment the engine's own event
    says the containers are healthy (deploy) or the job's container died (run-job), to
    the moment treadle exited."""
    table = section(
        f"on the local Docker engine (median of {runs} runs; times from the engine's own events)",
        "exit after finish",
        "(min-max)",
        "target: median < 0.3 s",
    )
    try:
        import docker  # noqa: PLC0415

        api = docker.APIClient(timeout=10, **docker.utils.kwargs_from_env())
        api.inspect_image(ENGINE_IMAGE)
    except Exception as e:  # noqa: BLE001 (no engine, or no test image: say so)
        table.rows.append(("skipped", f"no engine or no {ENGINE_IMAGE} ({e})", "", ""))
        return
    spec = Path("engine-spec.json")
    spec.write_text(json.dumps(ENGINE_SPEC))

    def deploy(n: int) -> float:
        region = f"bench{os.getpid()}x{n}"
        started = time.time()
        try:
            run(
                [
                    *TREADLE,
                    "deploy",
                    "--provider",
                    "docker",
                    "--cluster",
                    "bench-prod",
                    "--image",
                    ENGINE_IMAGE,
                    "--instances",
                    "2",
                    "--spec",
                    str(spec),
                    "--region",
                    region,
                ]
            )
            exited = time.time()
            events = engine_events(api, started, exited, f"treadle.region={region}")
            healthy = [e for e in events if e["Action"] == "health_status: healthy"]
            return exited - max(e["timeNano"] for e in healthy) / 1e9
        finally:
            for c in api.containers(all=True, filters={"label": [f"treadle.region={region}"]}):
                api.remove_container(c["Id"], force=True)

    def run_job(n: int) -> float:
        job = f"bench{os.getpid()}x{n}"
        started = time.time()
        run(
            [
                *TREADLE,
                "run-job",
                "--provider",
                "docker",
                "--job-id",
                job,
                "--image",
                ENGINE_IMAGE,
                "--cmd",
                "echo working; sleep 3",
            ]
        )
        exited = time.time()
        events = engine_events(api, started, exited, f"treadle.job={job}")
        return exited - max(e["timeNano"] for e in events if e["Action"] == "die") / 1e9

    for name, measure in (("deploy (health checked)", deploy), ("run-job", run_job)):
        progress(f"{name} on the Docker engine")
        lags = [measure(n) for n in range(runs)]
        lag = statistics.median(lags)
        table.rows.append(
            (
                name,
                seconds(lag),
                f"({min(lags):.2f}-{max(lags):.2f})",
                "met" if lag < TARGET_LAG else "MISSED",
            )
        )
    api.close()


# -- concurrency ------------------------------------------------------------------------


def concurrency() -> None:
    table = section(
        "several regions in one stage (each deployment lasts 2 s)", "wall", "vs one region"
    )
    timings = {**FAST, "deploy_seconds": 2.0}
    with MarathonEmulator(**timings) as emu:
        one, _ = run(
            [
                *TREADLE,
                "deploy",
                "--app",
                "one",
                "--image",
                "web:1",
                "--region",
                "/a",
                "--marathon-url",
                emu.url,
            ]
        )
        regions = [arg for r in ("/a", "/b", "/c") for arg in ("--region", r)]
        three, _ = run(
            [
                *TREADLE,
                "deploy",
                "--app",
                "three",
                "--image",
                "web:1",
                *regions,
                "--marathon-url",
                emu.url,
            ]
        )
    table.rows += [
        ("deploy, one region", seconds(one), "1.00x"),
        ("deploy, three regions", seconds(three), f"{three / one:.2f}x (one after another: 3x)"),
    ]


# -- the image --------------------------------------------------------------------------


def image_size() -> None:
    table = section("container image", "size", "")
    docker = shutil.which("docker")
    size = None
    if docker:
        try:
            done = subprocess.run(
                [docker, "image", "inspect", "treadle:ci", "--format", "{{.Size}}"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            size = int(done.stdout.strip()) if done.returncode == 0 else None
        except (subprocess.TimeoutExpired, ValueError):
            size = None
    table.rows.append(
        (
            "treadle:ci",
            f"{size / 1e6:.0f} MB" if size else "not built",
            "" if size else "(.ci/build-image builds it)",
        )
    )


# -- zero downtime behind a real load balancer ----------------------------------------


def zero_downtime() -> None:
    """benchmarks/zero_downtime.py's tables, one per engine, with treadle run by PYTHON."""
    import zero_downtime as zd

    for provider in zd.ENGINES:
        table = section(zd.title(provider), *zd.COLUMNS[1:])
        rows = zd.measure(provider, PYTHON, lambda line, p=provider: progress(f"{p}: {line}"))
        if isinstance(rows, str):
            table.rows.append(("skipped", rows, *[""] * (len(zd.COLUMNS) - 2)))
        else:
            table.rows += rows


# -- the table --------------------------------------------------------------------------


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()}: {os.cpu_count()} cores ({cpu}), {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; load average {load}"
    )


def print_table() -> None:
    for block in TABLE:
        widths = [
            max(len(r[i]) for r in [("", *block.columns), *block.rows])
            for i in range(len(block.columns) + 1)
        ]
        print(f"\n{block.title}")
        header = ("", *block.columns)
        for cells in [header, *block.rows]:
            print("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


SECTIONS = (
    "start-up",
    "cpu",
    "tracing",
    "lease",
    "overhead",
    "longer",
    "docker",
    "scale",
    "regions",
    "image",
    "zero-downtime",
)


def main() -> None:
    global PYTHON, TREADLE
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--python",
        help="the interpreter that runs treadle (default: a clean virtualenv, "
        "benchmarks/.venv, made on first use)",
    )
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"the sections to run, comma-separated: {', '.join(SECTIONS)}",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    if only - set(SECTIONS):
        parser.error(f"unknown sections: {', '.join(sorted(only - set(SECTIONS)))}")
    runs = 4 if args.quick else 10
    PYTHON, where = treadle_python(args.python)
    TREADLE = [PYTHON, "-m", "treadle"]
    header = f"treadle benchmarks, {time.strftime('%Y-%m-%d')}, on {machine()}\ntreadle runs from {where}"
    print(header, file=sys.stderr)
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        if "start-up" in only:
            start_up(runs)
        if "cpu" in only:
            cpu(runs + 5)
        if "tracing" in only:
            tracing(runs)
        if "lease" in only:
            lease_cost(runs * 2)
        overhead_runs = max(3, runs // 2)
        if "overhead" in only:
            stage_overhead(
                f"stage overhead (median of {overhead_runs} runs; each deployment and job run "
                "lasts about 4 s)",
                STAGES,
                overhead_runs,
            )
        if "longer" in only:
            stage_overhead(
                "longer waits (one run each; a rollout whose tasks start in 10 s and pass a "
                "health check 10 s later, lasting 30 s; a job run of 30 s)",
                LONGER,
                1,
            )
        if "docker" in only:
            on_docker(overhead_runs)
        if "scale" in only:
            scale(1 if args.quick else 3)
        if "regions" in only:
            concurrency()
        if "image" in only:
            image_size()
        if "zero-downtime" in only:
            zero_downtime()
    print(header)
    print_table()


if __name__ == "__main__":
    main()
