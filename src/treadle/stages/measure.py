"""The measuring half of verify: requests sent from worker threads sharing one httpx
client, each answer or error counted, and the report with its percentiles and thresholds
(treadle.stages.verify describes the check and runs the stage)."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from treadle.errors import InputError, Timeout, TreadleError
from treadle.waiting import CANCELLED, Wakeup, pause

if TYPE_CHECKING:
    from treadle.console import Console
    from treadle.stages.verify import Check
    from treadle.waiting import Deadline

# A body is read up to this much: enough for body-contains, bounded for a load test.
MAX_BODY_BYTES = 1 << 20
# The result keeps this many failed requests, each body cut to BODY_SHOWN characters.
FIRST_ERRORS = 5
BODY_SHOWN = 200
PROGRESS_SECONDS = 1.0
MAX_CONCURRENCY = 256


def count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


# --- one request -------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """How one request went: a status, or the kind of error that kept it from one."""

    url: str
    ok: bool
    latency: float
    status: int | None = None
    # refused, timeout, reset, tls, connect, protocol, other; or body: the body lacked
    # the text asked for.
    error: str | None = None
    detail: str = ""


def error_kind(error: BaseException) -> str:
    """What kept a request from an answer, from httpx's error and the OS error under it."""
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    if any(isinstance(c, ConnectionRefusedError) for c in chain):
        return "refused"
    if any(isinstance(c, ConnectionResetError | BrokenPipeError) for c in chain):
        return "reset"
    if isinstance(error, httpx.RemoteProtocolError) and "disconnected" in str(error):
        # The server closed the connection without answering.
        return "reset"
    if any(type(c).__name__.startswith("SSL") for c in chain):
        return "tls"
    if isinstance(error, httpx.ConnectError):
        return "connect"
    if isinstance(error, httpx.ProtocolError):
        return "protocol"
    return "other"


def send(client: httpx.Client, url: str, check: Check, deadline: Deadline) -> Answer:
    """GET `url` once, its body read up to MAX_BODY_BYTES; no request outlives the
    deadline's cap, reading a slowly dripping body included."""
    # The deadline gives any request at least a second; a load test may ask for less.
    timeout = min(check.request_timeout, deadline.request_timeout(check.request_timeout))
    started = time.perf_counter()
    try:
        with client.stream("GET", url, timeout=timeout) as response:
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) >= MAX_BODY_BYTES:
                    break
                if time.perf_counter() - started > timeout:
                    raise httpx.ReadTimeout(f"the body took more than {timeout:g}s")
    except (httpx.HTTPError, httpx.StreamError, httpx.InvalidURL, OSError, UnicodeError) as e:
        return Answer(url, False, time.perf_counter() - started, error=error_kind(e), detail=str(e))
    latency = time.perf_counter() - started
    status = response.status_code
    shown = body[:BODY_SHOWN].decode("utf-8", "replace")
    if status not in check.expect_status:
        return Answer(url, False, latency, status, detail=shown)
    if check.body_contains is not None and check.body_contains.encode() not in body:
        return Answer(url, False, latency, status, "body", shown)
    return Answer(url, True, latency, status)


# --- the report --------------------------------------------------------------------------


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile of sorted values; None for none."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def milliseconds(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def shown_ms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


@dataclass(frozen=True)
class Report:
    check: Check
    requests: int
    succeeded: int
    statuses: dict[int, int]
    errors: dict[str, int]
    # Seconds, sorted: the requests that got an answer.
    latencies: tuple[float, ...]
    first_errors: tuple[Answer, ...]
    elapsed: float

    @property
    def failed(self) -> int:
        return self.requests - self.succeeded

    @property
    def success_ratio(self) -> float:
        return self.succeeded / self.requests if self.requests else 0.0

    def p(self, percent: float) -> float | None:
        return percentile(self.latencies, percent)

    def thresholds(self) -> list[dict[str, object]]:
        check = self.check
        found: list[dict[str, object]] = [
            {
                "check": f"success ratio >= {check.min_success_ratio:g}",
                "actual": self.success_ratio,
                "passed": self.requests > 0 and self.success_ratio >= check.min_success_ratio,
            }
        ]
        if check.max_p95 is not None:
            p95 = self.p(95)
            found.append(
                {
                    "check": f"p95 <= {shown_ms(check.max_p95)}",
                    "actual": milliseconds(p95),
                    "passed": p95 is not None and p95 <= check.max_p95,
                }
            )
        return found

    def failures(self) -> list[str]:
        """The thresholds that failed, as a user reads them."""
        check, found = self.check, []
        if not self.requests:
            found.append("no request completed")
        elif self.success_ratio < check.min_success_ratio:
            found.append(
                f"{self.succeeded} of {self.requests} requests succeeded "
                f"(ratio {self.success_ratio:.4g} < {check.min_success_ratio:g})"
            )
        if check.max_p95 is not None:
            p95 = self.p(95)
            if p95 is None:
                found.append("no answer to measure p95 on")
            elif p95 > check.max_p95:
                found.append(f"p95 {shown_ms(p95)} > {shown_ms(check.max_p95)}")
        return found

    def progress(self) -> str:
        total = self.check.total
        done = f"{self.requests}/{total}" if total is not None else str(self.requests)
        line = f"verify: {done} requests, {self.failed} failed, p95 {shown_ms(self.p(95))}"
        if total is None and self.check.duration is not None:
            line += f" ({self.elapsed:.0f}s of {self.check.duration:g}s)"
        return line

    def summary(self) -> str:
        statuses = ", ".join(f"{n} x {s}" for s, n in sorted(self.statuses.items()))
        errors = ", ".join(f"{n} {kind}" for kind, n in sorted(self.errors.items()))
        return (
            f"verify: {count(self.requests, 'request')} in {self.elapsed:.2f}s: {self.succeeded} "
            f"succeeded ({'; '.join(x for x in (statuses, errors) if x) or 'none sent'}); "
            f"p50 {shown_ms(self.p(50))}, p95 {shown_ms(self.p(95))}, "
            f"p99 {shown_ms(self.p(99))}"
        )

    def fields(self) -> dict[str, object]:
        elapsed = max(self.elapsed, 1e-9)
        thresholds = self.thresholds()
        fields: dict[str, object] = {
            "urls": list(self.check.urls),
            "requests": self.requests,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "success_ratio": self.success_ratio,
            "statuses": {str(s): n for s, n in sorted(self.statuses.items())},
            "errors": dict(sorted(self.errors.items())),
            "latency_p50_ms": milliseconds(self.p(50)),
            "latency_p95_ms": milliseconds(self.p(95)),
            "latency_p99_ms": milliseconds(self.p(99)),
            "latency_max_ms": milliseconds(self.latencies[-1] if self.latencies else None),
            "duration_seconds": round(self.elapsed, 3),
            "requests_per_second": round(self.requests / elapsed, 1),
            "first_errors": [_error_fields(a) for a in self.first_errors],
            "thresholds": thresholds,
            "passed": all(t["passed"] for t in thresholds),
        }
        return fields


def _error_fields(answer: Answer) -> dict[str, object]:
    found: dict[str, object] = {"url": answer.url, "latency_ms": milliseconds(answer.latency)}
    if answer.status is not None:
        found["status"] = answer.status
    if answer.error is not None:
        found["error"] = answer.error
    if answer.detail:
        found["body" if answer.status is not None else "message"] = answer.detail
    return found


def error_line(answer: Answer) -> str:
    what = f"{answer.status}" if answer.status is not None else f"{answer.error}"
    if answer.error == "body":
        what += " without the text asked for"
    detail = f": {answer.detail[:BODY_SHOWN]!r}" if answer.detail else ""
    return f"verify:   GET {answer.url} -> {what}{detail}"


# --- the run -----------------------------------------------------------------------------


class _Run:
    """The workers and what they measured, under one lock."""

    def __init__(self, check: Check, deadline: Deadline, client: httpx.Client) -> None:
        self.check, self.deadline, self.client = check, deadline, client
        self.lock = threading.Lock()
        self.wakeup = Wakeup()
        self.began = time.monotonic()
        self.ends = self.began + check.duration if check.duration is not None else math.inf
        self.started = 0
        total = check.total
        self.workers = min(check.concurrency, total if total is not None else MAX_CONCURRENCY)
        self.running = self.workers
        self.stopped = False
        self.out_of_time = False
        self.crash: BaseException | None = None
        self.succeeded = 0
        self.statuses: Counter[int] = Counter()
        self.errors: Counter[str] = Counter()
        self.latencies: list[float] = []
        self.first_errors: list[Answer] = []

    def start(self) -> None:
        for i in range(self.workers):
            threading.Thread(target=self.work, name=f"verify-{i}", daemon=True).start()

    def next_url(self) -> str | None:
        total = self.check.total
        with self.lock:
            if self.stopped or CANCELLED.is_set() or time.monotonic() >= self.ends:
                return None
            if total is not None and self.started >= total:
                return None
            if self.deadline.expired():
                self.out_of_time = True
                return None
            url = self.check.urls[self.started % len(self.check.urls)]
            self.started += 1
            return url

    def work(self) -> None:
        try:
            while (url := self.next_url()) is not None:
                self.record(send(self.client, url, self.check, self.deadline))
        except BaseException as e:  # a bug: the stage re-raises it
            self.crash = e
        finally:
            with self.lock:
                self.running -= 1
                last = self.running == 0
            if last:
                self.wakeup.wake()

    def record(self, answer: Answer) -> None:
        with self.lock:
            if self.stopped:
                return
            if answer.status is not None:
                self.statuses[answer.status] += 1
                self.latencies.append(answer.latency)
            else:
                self.errors[answer.error or "other"] += 1
            if answer.ok:
                self.succeeded += 1
            elif len(self.first_errors) < FIRST_ERRORS:
                self.first_errors.append(answer)

    @property
    def finished(self) -> bool:
        with self.lock:
            return self.running == 0

    def report(self) -> Report:
        with self.lock:
            return Report(
                check=self.check,
                requests=sum(self.statuses.values()) + sum(self.errors.values()),
                succeeded=self.succeeded,
                statuses=dict(self.statuses),
                errors=dict(self.errors),
                latencies=tuple(sorted(self.latencies)),
                first_errors=tuple(self.first_errors),
                elapsed=time.monotonic() - self.began,
            )

    def stop(self) -> Report:
        """What was measured until now; answers after this are not counted."""
        report = self.report()
        with self.lock:
            self.stopped = True
        return report


def run_check(check: Check, console: Console, deadline: Deadline) -> Report:
    """Send the check's requests and measure them, with a progress line every second.
    A cancel (or another error of the stage's) ends it at once and carries what was
    measured so far in its `fields`; the deadline stops it starting requests (Timeout,
    when it stopped before the requests asked for were sent)."""
    if not check.urls:
        raise InputError("verify: no URL to check")
    limits = httpx.Limits(
        max_connections=check.concurrency, max_keepalive_connections=check.concurrency
    )
    client = httpx.Client(limits=limits, follow_redirects=False)
    run = _Run(check, deadline, client)
    run.start()
    try:
        while not run.finished:
            if pause(PROGRESS_SECONDS, run.wakeup):
                continue
            console.info(run.report().progress())
    except TreadleError as e:
        report = run.stop()
        e.fields = {**report.fields(), **e.fields}
        raise
    # Every worker has ended: nothing uses the client any more.
    client.close()
    if run.crash is not None:
        raise run.crash
    report = run.report()
    if run.out_of_time:
        raise Timeout(
            f"verify: --timeout ({deadline.seconds:g}s) ran out after {report.requests} "
            "requests" + (f" of {check.total}" if check.total is not None else ""),
            fields=report.fields(),
        )
    return report
