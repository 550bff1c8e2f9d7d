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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import httpx

from treadle.errors import InputError, StageFailed
from treadle.stages.measure import MAX_CONCURRENCY, count, error_line, run_check

if TYPE_CHECKING:
    from treadle.stages.runtime import Runtime

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
DEFAULT_EXPECT_STATUS = "200-399"
DEFAULT_REQUEST_TIMEOUT = 30.0

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
        many = count(total, "request") if total is not None else "requests"
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
    try:
        url.host.encode("idna")  # what the client will do to send it
    except UnicodeError:
        raise _invalid(name, value, "its host name is not a valid DNS name") from None
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
            rt.console.info(error_line(answer))
    fields = report.fields()
    failures = report.failures()
    if failures:
        raise StageFailed(f"verify failed: {'; '.join(failures)}", fields=fields)
    rt.console.info("verify: passed")
    return fields
