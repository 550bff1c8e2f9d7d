"""Deadlines, cancellation, and the one wait loop every stage uses.

Polling starts fast, because a small change often settles in well under a second, and
backs off so that a long rollout does not hammer the provider's API.

Every pause goes through `pause()`, so a CI cancel (SIGTERM, SIGINT) stops a stage at
its next pause: at once, between requests, never in the middle of one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from treadle.errors import Cancelled, Timeout

T = TypeVar("T")

# Set by the signal handler; every thread's pauses see it.
CANCELLED = threading.Event()
_shielded = threading.local()


def cancel(reason: str) -> None:
    CANCELLED.reason = reason  # type: ignore[attr-defined]
    CANCELLED.set()


def pause(seconds: float) -> None:
    """Sleep, unless the stage is cancelled (then raise Cancelled, at once)."""
    if getattr(_shielded, "on", False):
        time.sleep(seconds)
        return
    if CANCELLED.wait(seconds):
        raise Cancelled(f"cancelled ({getattr(CANCELLED, 'reason', 'signal')})")


@contextlib.contextmanager
def cancel_on_signals() -> Iterator[None]:
    """While a stage runs, SIGTERM and SIGINT (a CI cancel) cancel it instead of killing
    the process, so its result is still written and its rollback still done."""
    import signal

    CANCELLED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}
    previous = {s: signal.signal(s, lambda s, _: cancel(names[s])) for s in names}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Pauses in this block do not raise Cancelled: the clean-up after a cancel (stopping
    a job, a rollback) must be able to finish its requests."""
    before = getattr(_shielded, "on", False)
    _shielded.on = True
    try:
        yield
    finally:
        _shielded.on = before

FIRST_POLL = 0.1
MAX_POLL = 2.0
PROGRESS_EVERY = 10.0


@dataclass
class Deadline:
    """The moment a stage must give up, shared by its waits and its retries."""

    seconds: float
    started: float = 0.0

    def __post_init__(self) -> None:
        self.started = self.started or time.monotonic()

    @property
    def at(self) -> float:
        return self.started + self.seconds

    def extend(self, seconds: float) -> None:
        """Give `seconds` more from now (a rollback after the deadline has passed)."""
        self.seconds = max(self.seconds, self.elapsed() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def poll_intervals(first: float = FIRST_POLL, limit: float = MAX_POLL):
    """0.1, 0.15, 0.225 ... up to `limit` seconds."""
    interval = first
    while True:
        yield interval
        interval = min(limit, interval * 1.5)


def wait_for(
    check: Callable[[], T],
    done: Callable[[T], bool],
    *,
    deadline: Deadline,
    describe: Callable[[T], str],
    what: str,
    log: Callable[[str], None],
) -> T:
    """Call `check` until `done` says yes, logging each new state as `what: state`; raise
    Timeout at the deadline with the last state in the message."""
    last_line, last_logged = "", 0.0
    for interval in poll_intervals():
        state = check()
        line = f"{what}: {describe(state)}"
        now = time.monotonic()
        if line != last_line or now - last_logged >= PROGRESS_EVERY:
            log(line)
            last_line, last_logged = line, now
        if done(state):
            return state
        if deadline.expired():
            raise Timeout(f"{what}: not done after {deadline.seconds:g}s ({describe(state)})")
        pause(min(interval, max(0.05, deadline.remaining())))
    raise AssertionError("unreachable")
