"""Deadlines and the one wait loop every stage uses.

Polling starts fast, because a small change often settles in well under a second, and
backs off so that a long rollout does not hammer the provider's API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from treadle.errors import Timeout

T = TypeVar("T")

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
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `check` until `done` says yes, logging each new state; raise Timeout at the
    deadline with the last state in the message."""
    last_line, last_logged = "", 0.0
    for interval in poll_intervals():
        state = check()
        line = describe(state)
        now = time.monotonic()
        if line != last_line or now - last_logged >= PROGRESS_EVERY:
            log(line)
            last_line, last_logged = line, now
        if done(state):
            return state
        if deadline.expired():
            raise Timeout(f"{what}: not done after {deadline.seconds:g}s ({line})")
        sleep(min(interval, max(0.05, deadline.remaining())))
    raise AssertionError("unreachable")
