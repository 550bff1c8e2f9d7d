"""A real load balancer in front of a cluster while treadle changes it, and what the
requests through it saw.

HAProxy runs in a container on the cluster's network with the configuration that
docs/traffic.md gives users (read from the page, so that the recipe is what is tested),
published on 127.0.0.1; a few threads send it a steady stream of requests; each
operation (a red/black deploy, a canary promoted or aborted, enable and disable, a
rollback) runs under that load, and its requests are counted: sent, failed, latency, and
which server group answered each (the body names the version). Used by
tests/on_docker/test_zero_downtime.py, tests/on_swarm/test_zero_downtime.py and
benchmarks/zero_downtime.py, which run treadle each their own way (a Runner).
"""

from __future__ import annotations

import io
import math
import re
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "docs" / "traffic.md"
HAPROXY_IMAGE = "treadle-test/haproxy:1"
HAPROXY_BASE = "treadle-test/python-base:bookworm"
HAPROXY_BUILD = ROOT / "tests" / "images" / "haproxy"
HAPROXY_CONFIG = "/etc/haproxy/haproxy.cfg"
HAPROXY_PORT = 8080
CLUSTER = "web-prod"
# The test images answer with their version: "1" and "2".
VERSIONS = {"1": "treadle-test/busybox:1", "2": "treadle-test/busybox:2"}
# What the served instances run: busybox httpd, which starts listening 2 s after its
# container starts (as a server that loads something first), and whose /version takes
# 20 ms to answer (so that some requests are always in flight when a server group goes)
# and names the image's version. On its stop signal it stops accepting, finishes what it
# serves and exits a second later, as a server with a graceful shutdown does.
SERVE = (
    "sleep 2 && mkdir -p /www/cgi-bin"
    " && printf '#!/bin/sh\\nsleep 0.02\\necho Content-Type: text/plain\\necho\\ncat /www/index.html\\n'"
    " > /www/cgi-bin/version && chmod +x /www/cgi-bin/version"
    " && httpd -f -p 80 -h /www & pid=$!; trap 'kill $pid; sleep 1; exit 0' TERM; wait"
)
APP = {
    "command": ["sh", "-c", SERVE],
    "healthcheck": {
        "test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"],
        "interval": "500ms",
        "retries": 3,
        # Failures while it starts do not count (Swarm replaces a task found unhealthy).
        "start_period": "10s",
    },
}
PATH = "/cgi-bin/version"
# The load: each worker sends a request every INTERVAL seconds (or as soon as its last one
# is answered, when that takes longer). Its timeout outlasts the balancer's retries (a
# few connection timeouts of 1 s) and not its server timeout (30 s): a request cut off
# while an instance serves it counts as failed.
WORKERS = 3
INTERVAL = 0.015
REQUEST_TIMEOUT = 10.0
# After an operation's last command, requests go on being counted for this long: what the
# balancer does once treadle is done is part of the operation.
SETTLE = 1.0


def recipe(swarm: bool) -> str:
    """docs/traffic.md's HAProxy configuration; on Swarm resolving `tasks.<alias>`, as the
    page says."""
    text = RECIPE.read_text()
    found = re.search(r"```haproxy\n(.*?)```", text, re.DOTALL)
    assert found, f"no haproxy block in {RECIPE}"
    config = found.group(1)
    target = f" {CLUSTER}:80"
    assert config.count(target) == 1, f"the recipe should name {CLUSTER}:80 once"
    return config.replace(target, f" tasks.{CLUSTER}:80") if swarm else config


def ensure_haproxy_image(api: Any) -> str | None:
    """Build HAPROXY_IMAGE (tests/images/haproxy) when the engine lacks it; None when it
    is there, else why it cannot be built."""
    if api.images(name=HAPROXY_IMAGE):
        return None
    if not api.images(name=HAPROXY_BASE):
        return f"{HAPROXY_IMAGE} needs {HAPROXY_BASE}: run .ci/build-image"
    log: list[str] = []
    try:
        for chunk in api.build(
            path=str(HAPROXY_BUILD), tag=HAPROXY_IMAGE, network_mode="host", rm=True, decode=True
        ):
            log.append(str(chunk.get("stream") or chunk.get("error") or ""))
            if "error" in chunk:
                return f"building {HAPROXY_IMAGE} failed: {''.join(log)[-2000:]}"
    except docker.errors.APIError as e:
        return f"building {HAPROXY_IMAGE} failed: {e}"
    return None


def archive(name: str, text: str) -> bytes:
    """A tar holding one file, for the engine's PUT /containers/{id}/archive."""
    data = text.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@contextmanager
def balancer(api: Any, network: str, labels: dict[str, str], swarm: bool) -> Iterator[Balancer]:
    """HAProxy on `network`, published on 127.0.0.1, labelled with `labels` (the caller
    removes what carries them). The network must exist (attachable on Swarm)."""
    created = api.create_container(
        HAPROXY_IMAGE,
        labels=labels,
        ports=[HAPROXY_PORT],
        host_config=api.create_host_config(
            port_bindings={HAPROXY_PORT: ("127.0.0.1", None)}, network_mode=network
        ),
    )
    container = created["Id"]
    try:
        api.put_archive(
            container, str(Path(HAPROXY_CONFIG).parent), archive("haproxy.cfg", recipe(swarm))
        )
        api.start(container)
        port = api.port(container, HAPROXY_PORT)[0]["HostPort"]
        yield Balancer(api, container, f"http://127.0.0.1:{port}{PATH}")
    finally:
        api.remove_container(container, force=True)


@dataclass
class Balancer:
    api: Any
    container: str
    url: str

    def log(self, lines: int = 40) -> str:
        """The tail of HAProxy's log (a line per request, and its servers coming and
        going): what to read when a request failed."""
        text: bytes = self.api.logs(self.container, tail=lines)
        return text.decode(errors="replace")

    def wait_serving(self, version: str, timeout: float = 30.0) -> None:
        """Until a request through it is answered by `version`."""
        end = time.monotonic() + timeout
        last = ""
        with httpx.Client(trust_env=False, timeout=2) as client:
            while time.monotonic() < end:
                if not self.api.inspect_container(self.container)["State"]["Running"]:
                    raise AssertionError(f"the balancer stopped:\n{self.log()}")
                try:
                    answer = client.get(self.url)
                    if answer.status_code == 200 and answer.text.strip() == version:
                        return
                    last = f"{answer.status_code} {answer.text.strip()[:80]}"
                except httpx.HTTPError as e:
                    last = repr(e)
                time.sleep(0.1)
        raise AssertionError(f"the balancer never served version {version} ({last})\n{self.log()}")


@dataclass(frozen=True)
class Reply:
    started: float
    seconds: float
    status: int | None
    body: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


class Load:
    """WORKERS threads, each sending a request every INTERVAL seconds through the
    balancer until stopped; every reply kept, in the order they came."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.replies: list[Reply] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # When each worker's request now in flight started (None: between requests).
        self._busy: list[float | None] = [None] * WORKERS
        self._threads = [
            threading.Thread(target=self._work, args=(n,), daemon=True) for n in range(WORKERS)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(REQUEST_TIMEOUT + 5)

    def _work(self, n: int) -> None:
        with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT) as client:
            due = time.monotonic() + n * INTERVAL / WORKERS
            while not self._stop.is_set():
                time.sleep(max(0.0, due - time.monotonic()))
                started = time.monotonic()
                self._busy[n] = started
                try:
                    answer = client.get(self.url)
                    reply = Reply(
                        started, time.monotonic() - started, answer.status_code, answer.text.strip()
                    )
                except httpx.HTTPError as e:
                    reply = Reply(started, time.monotonic() - started, None, "", repr(e))
                with self._lock:
                    self.replies.append(reply)
                self._busy[n] = None
                due = max(due + INTERVAL, time.monotonic())

    def between(self, start: float, end: float) -> list[Reply]:
        """The replies to the requests started from `start` to `end`, once every one of
        them is answered."""
        limit = time.monotonic() + REQUEST_TIMEOUT + 5
        while any(b is not None and b <= end for b in self._busy) and time.monotonic() < limit:
            time.sleep(0.01)
        with self._lock:
            return sorted(
                (r for r in self.replies if start <= r.started <= end), key=lambda r: r.started
            )


# treadle run one way or another: its arguments in, (exit code, what it wrote on stderr)
# out.
Runner = Callable[[Sequence[str]], tuple[int, str]]


@dataclass(frozen=True)
class Operation:
    """One row of the table: the stages run one after another under load."""

    name: str
    commands: tuple[tuple[str, ...], ...]
    # A rollback: the version of the group it brings back, to time its first answer.
    back_to: str | None = None


@dataclass
class Measured:
    operation: Operation
    seconds: float
    replies: list[Reply]
    # From the start of the operation to the first answer from the group it brings back.
    first_back: float | None = None
    failures: list[Reply] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.replies)

    @property
    def failed(self) -> int:
        return len(self.failures)

    def latency(self, share: float) -> float:
        """The latency that `share` of the requests (0.99: p99) took at most."""
        ordered = sorted(r.seconds for r in self.replies)
        return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else 0.0


def operations(provider: str, region: str, network: str, keep_running: bool) -> list[Operation]:
    """What a cluster's life brings, in an order each step can follow: web-prod-v000
    (version 1, two instances) serves first. `keep_running` (Docker): the red/black deploy
    and its rollback keep the group they take out running."""
    spec = ("--spec", "{spec}")
    on = ("--provider", provider, "--region", region)
    keep = ("--keep-running",) if keep_running else ()
    cluster = ("--cluster", CLUSTER)

    def deploy(version: str, *args: str) -> tuple[str, ...]:
        image = VERSIONS[version]
        return ("deploy", *on, *cluster, "--image", image, *spec, "--network", network, *args)

    def stage(*args: str) -> tuple[str, ...]:
        return (args[0], *on, *args[1:])

    red_black = "red/black deploy" + (", --keep-running" if keep_running else "")
    return [
        Operation(red_black, (deploy("2", "--strategy", "red-black", *keep),)),
        Operation(
            "rollback" + (", --keep-running" if keep_running else ""),
            (stage("rollback", *cluster, *keep),),
            back_to="1",
        ),
        Operation(
            "canary, then promote",
            (
                deploy("2", "--strategy", "canary", "--canary-instances", "1"),
                stage("promote", *cluster),
            ),
        ),
        Operation(
            "canary, then abort",
            (
                deploy("1", "--strategy", "canary", "--canary-instances", "1"),
                stage("abort", *cluster),
            ),
        ),
        Operation(
            "enable, then disable",
            (
                stage("enable", "--server-group", f"{CLUSTER}-v000"),
                stage("disable", "--server-group", f"{CLUSTER}-v002"),
            ),
        ),
    ]


def first_deploy(provider: str, region: str, network: str) -> tuple[str, ...]:
    return (
        "deploy",
        "--provider",
        provider,
        "--region",
        region,
        "--cluster",
        CLUSTER,
        "--image",
        VERSIONS["1"],
        "--spec",
        "{spec}",
        "--network",
        network,
        "--instances",
        "2",
    )


def run_operations(
    api: Any,
    run: Runner,
    *,
    provider: str,
    region: str,
    labels: dict[str, str],
    folder: Path,
    progress: Callable[[str], None] = lambda line: None,
) -> list[Measured]:
    """Deploy the cluster's first server group, put the balancer in front, then run every
    operation under load. Everything made carries `labels` (the region's): the caller
    removes it."""
    swarm = provider == "swarm"
    network = f"{region}-web"
    spec_file = folder / "app.yaml"
    spec_file.write_text(yaml.safe_dump(APP))

    def stage(command: Sequence[str]) -> None:
        words = [str(spec_file) if w == "{spec}" else w for w in command]
        code, stderr = run(words)
        assert code == 0, f"treadle {' '.join(words)}: exit {code}\n{stderr}"

    stage(first_deploy(provider, region, network))
    measured = []
    with balancer(api, network, labels, swarm) as lb:
        lb.wait_serving("1")
        with Load(lb.url) as load:
            for operation in operations(provider, region, network, keep_running=not swarm):
                progress(operation.name)
                start = time.monotonic()
                for command in operation.commands:
                    stage(command)
                took = time.monotonic() - start
                time.sleep(SETTLE)
                replies = load.between(start, time.monotonic())
                first = (
                    next((r.started for r in replies if r.ok and r.body == operation.back_to), None)
                    if operation.back_to
                    else None
                )
                measured.append(
                    Measured(
                        operation,
                        took,
                        replies,
                        None if first is None else first - start,
                        [r for r in replies if not r.ok],
                    )
                )
                if measured[-1].failures:
                    failures = "\n".join(map(str, measured[-1].failures[:10]))
                    progress(
                        f"{operation.name}: failed\n{failures}\nthe balancer's log:\n{lb.log(80)}"
                    )
    return measured


def table(measured: Sequence[Measured]) -> list[tuple[str, ...]]:
    """The rows: operation, the stages' time, requests sent, failed, p99 and max latency,
    and for a rollback the time to the first answer of the group it brought back."""
    rows = []
    for m in measured:
        back = "" if m.first_back is None else f"{m.first_back:.2f} s"
        if m.operation.back_to and m.first_back is None:
            back = "never"
        rows.append(
            (
                m.operation.name,
                f"{m.seconds:.1f} s",
                str(m.sent),
                str(m.failed),
                f"{m.latency(0.99) * 1000:.0f} ms",
                f"{m.latency(1.0) * 1000:.0f} ms",
                back,
            )
        )
    return rows


COLUMNS = ("operation", "stages took", "requests", "failed", "p99", "max", "first answer back")


def assert_no_request_failed(measured: Sequence[Measured]) -> None:
    """Every operation sent requests and none failed; the rollback's group answered."""
    report = "\n".join(" | ".join(row) for row in [COLUMNS, *table(measured)])
    assert all(m.sent for m in measured), report
    assert [(m.operation.name, m.failures) for m in measured if m.failures] == [], report
    rollback = next(m for m in measured if m.operation.back_to)
    assert rollback.first_back is not None, f"the group rolled back to never answered\n{report}"
