"""verify: an HTTP smoke test and small load test of URLs or of a cluster's endpoints,
with thresholds. It reads only, so it takes no cluster lease; deploy runs the same check
(`deploy --verify FILE`) between the new server group healthy and the old ones disabled.

Requests go round-robin over the URLs from `concurrency` worker threads that share one
httpx client (its pool holds a connection per worker). A worker starts no request once
`requests` have been started, `duration` has passed, the deadline has expired or the
stage is cancelled; each request's timeout is capped by the deadline. The threads are
daemons, so that a cancel ends the stage at once, with what was measured so far, even
while requests hang.

Latency is measured with `time.perf_counter` around each request, body included, for
every request that got an answer (of any status); requests without an answer are
counted by the kind of error instead.
"""

from __future__ import annotations

import difflib
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from treadle.errors import InputError, StageFailed, Timeout, TreadleError
from treadle.waiting import CANCELLED, Wakeup, pause

if TYPE_CHECKING:
    from treadle.console import Console
    from treadle.stages.runtime import Runtime
    from treadle.waiting import Deadline

# The keys of a verify file, spelled as the options are (`min-success-ratio` for
# `--min-success-ratio`); the command takes the same keys from its options.
KEYS = (
    "url",
    "path",
    "requests",
    "concurrency",
    "duration",
    "expect-status",
    "body-contains",
    "min-success-ratio",
    "max-p95",
    "request-timeout",
)
MAX_REQUESTS = 1_000_000
MAX_CONCURRENCY = 256
DEFAULT_EXPECT_STATUS = "200-399"
DEFAULT_REQUEST_TIMEOUT = 30.0
# A body is read up to this much: enough for body-contains, bounded for a load test.
MAX_BODY_BYTES = 1 << 20
# The result keeps this many failed requests, each body cut to BODY_SHOWN characters.
FIRST_ERRORS = 5
BODY_SHOWN = 200
PROGRESS_SECONDS = 1.0

_STATUS = re.compile(r"([1-5])xx|([1-5]\d\d)(?:-([1-5]\d\d))?", re.IGNORECASE)
_MILLISECONDS = re.compile(r"(\d+(?:\.\d+)?)ms")


@dataclass(frozen=True)
class Statuses:
    """The statuses that count as success: `200`, `2xx`, `200-399`, comma-separated."""

    ranges: tuple[tuple[int, int], ...]
    text: str

    def __contains__(self, status: object) -> bool:
        return isinstance(status, int) and any(lo <= status <= hi for lo, hi in self.ranges)

    @classmethod
    def parse(cls, value: Any, name: str) -> Statuses:
        items = value if isinstance(value, list) else [value]
        parts: list[str] = []
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise _invalid(name, value, "expected statuses like 200, 2xx, 200-399")
            parts += [p.strip() for p in str(item).split(",")]
        ranges: list[tuple[int, int]] = []
        for part in parts:
            found = _STATUS.fullmatch(part)
            if not found:
                raise _invalid(name, value, "expected statuses like 200, 2xx, 200-399")
            hundreds, low, high = found.groups()
            if hundreds:
                ranges.append((int(hundreds) * 100, int(hundreds) * 100 + 99))
            elif int(high or low) < int(low):
                raise _invalid(name, value, f"the range {part} goes backwards")
            else:
                ranges.append((int(low), int(high or low)))
        return cls(tuple(ranges), ",".join(parts))


@dataclass(frozen=True)
class Check:
    """What verify sends and what it takes for success. No `urls`: the endpoints of what
    was deployed, given later (`against`)."""

    urls: tuple[str, ...] = ()
    # Appended to each endpoint (`HOST:PORT`) that becomes a URL.
    path: str | None = None
    # Requests in all; None: one per URL, or as many as `duration` allows.
    requests: int | None = None
    concurrency: int = 1
    # Seconds after which no request is started.
    duration: float | None = None
    expect_status: Statuses = field(
        default_factory=lambda: Statuses.parse(DEFAULT_EXPECT_STATUS, "expect-status")
    )
    body_contains: str | None = None
    min_success_ratio: float = 1.0
    # Seconds.
    max_p95: float | None = None
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    @classmethod
    def parse(cls, mapping: Mapping[Any, Any], where: str = "") -> Check:
        """A check from the keys of a verify file (`where`: `verify file PATH`, which
        errors start with) or, without `where`, from the options (errors name `--key`).
        A key given as None is absent. Any error is an InputError of one line naming the
        key, or the value, to fix."""

        def name(key: str) -> str:
            return key if where else f"--{key}"

        try:
            unknown = [str(k) for k in mapping if k not in KEYS]
            if unknown:
                raise InputError(_unknown_key(unknown[0], where))
            given = {k: v for k, v in mapping.items() if v is not None}
            found: dict[str, Any] = {}
            if "url" in given:
                value = given["url"]
                urls = value if isinstance(value, list) else [value]
                found["urls"] = tuple(_url(u, name("url")) for u in urls)
                if "path" in given:
                    raise InputError(
                        f"{name('path')} goes with a deploy's endpoints, not with "
                        f"{name('url')}: put the path in the URL"
                    )
            if "path" in given:
                path = given["path"]
                if not isinstance(path, str) or not path.startswith("/"):
                    raise _invalid(name("path"), path, "a path starts with /")
                found["path"] = path
            if "requests" in given:
                found["requests"] = _whole(given["requests"], name("requests"), MAX_REQUESTS)
            if "concurrency" in given:
                found["concurrency"] = _whole(
                    given["concurrency"], name("concurrency"), MAX_CONCURRENCY
                )
            for key in ("duration", "max-p95", "request-timeout"):
                if key in given:
                    found[key.replace("-", "_")] = _seconds(given[key], name(key))
            if "expect-status" in given:
                found["expect_status"] = Statuses.parse(
                    given["expect-status"], name("expect-status")
                )
            if "body-contains" in given:
                text = given["body-contains"]
                if not isinstance(text, str) or not text:
                    raise _invalid(name("body-contains"), text, "expected text (quote it)")
                found["body_contains"] = text
            if "min-success-ratio" in given:
                found["min_success_ratio"] = _ratio(
                    given["min-success-ratio"], name("min-success-ratio")
                )
        except InputError as e:
            raise InputError(f"{where}: {e}" if where else str(e)) from None
        return cls(**found)

    @property
    def total(self) -> int | None:
        """Requests to send in all; None: as many as the duration allows."""
        if self.requests is not None:
            return self.requests
        return None if self.duration is not None else len(self.urls)

    def with_urls(self, urls: Iterable[str]) -> Check:
        return replace(self, urls=tuple(_url(u, "url") for u in urls))

    def against(self, endpoints: Iterable[str]) -> Check:
        """The check of what was deployed: its own URLs when it names some, else one for
        each endpoint (`HOST:PORT` -> `http://HOST:PORT` + `path`)."""
        return self if self.urls else self.with_urls(endpoint_urls(endpoints, self.path))

    def describe(self) -> str:
        total = self.total
        many = _count(total, "request") if total is not None else "requests"
        within = f" for {self.duration:g}s" if self.duration is not None else ""
        return (
            f"{many}{within}, {self.concurrency} at a time, to {', '.join(self.urls)} "
            f"(success: status {self.expect_status.text}"
            + (f", body contains {self.body_contains!r}" if self.body_contains else "")
            + ")"
        )


def endpoint_urls(endpoints: Iterable[str], path: str | None = None) -> list[str]:
    """`http://HOST:PORT/path` for each TCP endpoint (`127.0.0.1:49153`, `[::1]:80`); one
    of another protocol (`HOST:PORT/udp`) serves no HTTP."""
    return [f"http://{e}{path or '/'}" for e in endpoints if "/" not in e]


def result_urls(result: Mapping[str, Any], path: str | None = None) -> list[str]:
    """What a stage's result says to check: its `url`, its `endpoints` as URLs, and those
    of each of its `regions`."""
    parts = [result, *[r for r in result.get("regions") or [] if isinstance(r, Mapping)]]
    urls: list[str] = []
    for part in parts:
        if isinstance(part.get("url"), str):
            urls.append(part["url"])
        endpoints = part.get("endpoints")
        if isinstance(endpoints, list):
            urls += endpoint_urls([e for e in endpoints if isinstance(e, str)], path)
    return list(dict.fromkeys(urls))


# --- values ------------------------------------------------------------------------------


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"


def _invalid(name: str, value: Any, why: str) -> InputError:
    return InputError(f"invalid {name} {value!r}: {why}")


def _unknown_key(key: str, where: str) -> str:
    close = difflib.get_close_matches(key.replace("_", "-"), KEYS, n=1, cutoff=0.75)
    hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(KEYS)}"
    return f"unknown key {key!r} ({hint})" if where else f"unknown option {key!r}"


def _url(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _invalid(name, value, "expected a URL")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as e:
        raise _invalid(name, value, str(e)) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise _invalid(name, value, "verify checks http:// and https:// URLs only")
    return value


def _whole(value: Any, name: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid(name, value, "expected a whole number")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise _invalid(name, value, "expected a whole number") from None
    if not 1 <= number <= most:
        raise _invalid(name, value, f"must be from 1 to {most:,}")
    return number


def _seconds(value: Any, name: str) -> float:
    """Seconds from 2, 0.25, 250ms, 90s, 10m, 1h."""
    from treadle.cli.values import duration

    why = "expected seconds or a duration like 250ms, 2s, 1m"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _invalid(name, value, why)
    if isinstance(value, int | float):
        seconds = float(value)
    elif found := _MILLISECONDS.fullmatch(value.strip()):
        seconds = float(found[1]) / 1000
    else:
        try:
            seconds = duration(value, name)
        except InputError:
            raise _invalid(name, value, why) from None
    if not 0 < seconds < math.inf:
        raise _invalid(name, value, "must be more than 0")
    return seconds


def _ratio(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _invalid(name, value, "expected a number more than 0 and at most 1")
    try:
        ratio = float(str(value).strip())
    except ValueError:
        raise _invalid(name, value, "expected a number more than 0 and at most 1") from None
    if not 0 < ratio <= 1:
        raise _invalid(name, value, "must be more than 0 and at most 1")
    return ratio


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
    except (httpx.HTTPError, httpx.StreamError, OSError) as e:
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
            f"verify: {_count(self.requests, 'request')} in {self.elapsed:.2f}s: {self.succeeded} "
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


def _error_line(answer: Answer) -> str:
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


def verify(rt: Runtime, check: Check) -> dict[str, object]:
    """The verify stage: run the check, log the result; StageFailed (exit 1) with the
    report's fields when a threshold fails."""
    if not check.urls:
        raise InputError("verify: no URL to check: give url, or check what a deploy made")
    for url in check.urls:
        rt.console.mask_url(url)
    if rt.dry_run:
        rt.plan(f"send {check.describe()}")
        return {"urls": list(check.urls)}
    rt.console.info(f"verify: {check.describe()}")
    report = run_check(check, rt.console, rt.deadline)
    rt.console.info(report.summary())
    if report.first_errors:
        rt.console.info("verify: first failed requests:")
        for answer in report.first_errors:
            rt.console.info(_error_line(answer))
    fields = report.fields()
    failures = report.failures()
    if failures:
        raise StageFailed(f"verify failed: {'; '.join(failures)}", fields=fields)
    rt.console.info("verify: passed")
    return fields
