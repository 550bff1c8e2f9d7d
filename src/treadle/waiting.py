"""Deadlines, cancellation, and the one wait loop every stage uses.

Polling starts fast, because a small change often settles in well under a second, and
backs off so that a long rollout does not hammer the provider's API. A provider that
hears of changes as they happen (Marathon's event stream) ends a pause early through a
`Wakeup`; while its news can be relied on, polling is only a safety net.

Every pause goes through `pause()`, so a CI cancel (SIGTERM, SIGINT) stops a stage at
its next pause: at once, between requests, never in the middle of one.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from treadle import tracing
from treadle.errors import Cancelled, Timeout, TreadleError

T = TypeVar("T")

FIRST_POLL = 0.1
MAX_POLL = 2.0
# While a provider's news is live, polling only covers news that got lost.
SAFETY_NET_POLL = 10.0
# Progress news (a task started) is looked at within this, so that a rollout's many
# small steps cost a few requests, not one each.
NUDGE_SECONDS = 5.0
PROGRESS_EVERY = 10.0

# Set by the signal handler; every thread's pauses see it.
CANCELLED = threading.Event()
_shielded = threading.local()


class Wakeup:
    """News that ends a wait's pause early, given by a provider that hears of changes as
    they happen, from its own thread.

    `wake()`: something after which the wait may be over (a rollout ended, a task
    failed); the wait checks at once. `nudge()`: progress (a task started, passed a
    check); the wait checks within NUDGE_SECONDS. `live` says whether news can be relied
    on right now (the provider's stream is attached).
    """

    def __init__(self, safety_net: float = SAFETY_NET_POLL) -> None:
        self.live = False
        # How often a wait polls while the news is live, in case some got lost.
        self.safety_net = safety_net
        self._due: float | None = None
        # Reentrant, so that a cancel from a signal handler can wake the main thread's own
        # pause even while that thread holds the lock.
        self._changed = threading.Condition(threading.RLock())

    def wake(self) -> None:
        self._due_by(time.monotonic())

    def nudge(self) -> None:
        self._due_by(time.monotonic() + NUDGE_SECONDS)

    def _due_by(self, moment: float) -> None:
        with self._changed:
            if self._due is None or moment < self._due:
                self._due = moment
                self._changed.notify_all()

    def sleep(self, seconds: float, *, cancellable: bool = True) -> bool:
        """Until `seconds` have passed, news falls due, or (when `cancellable`) the stage
        is cancelled; whether news fell due."""
        end = time.monotonic() + seconds
        with self._changed:
            while not (cancellable and CANCELLED.is_set()):
                until = end if self._due is None else min(end, self._due)
                left = until - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            if self._due is not None and self._due <= time.monotonic():
                self._due = None
                return True
            return False


# The wake-ups that pauses sleep on now, for a cancel to end them. Only added to and
# removed from (single, atomic operations), so a signal handler may copy it safely.
_sleeping: set[Wakeup] = set()
# Called (in the signal handler) when a signal cancels the stage.
_on_signal: list[Callable[[str], None]] = []


def cancel(reason: str, kind: type[TreadleError] = Cancelled) -> None:
    """End the stage at its next pause (in every thread) with `kind(reason)`: a CI cancel,
    or the cluster lease lost to another run."""
    CANCELLED.reason = reason  # type: ignore[attr-defined]
    CANCELLED.kind = kind  # type: ignore[attr-defined]
    CANCELLED.set()
    for wakeup in list(_sleeping):
        wakeup.wake()


def cancelled_error() -> TreadleError:
    kind: type[TreadleError] = getattr(CANCELLED, "kind", Cancelled)
    reason = getattr(CANCELLED, "reason", "signal")
    return kind(f"cancelled ({reason})" if kind is Cancelled else reason)


def pause(seconds: float, wakeup: Wakeup | None = None) -> bool:
    """Sleep, or less when `wakeup` brings news, unless the stage is cancelled (then raise
    its error, at once); whether `wakeup` brought news."""
    cancellable = not getattr(_shielded, "on", False)
    woken = False
    if wakeup is not None:
        _sleeping.add(wakeup)
        try:
            woken = wakeup.sleep(seconds, cancellable=cancellable)
        finally:
            _sleeping.discard(wakeup)
    elif cancellable:
        CANCELLED.wait(seconds)
    else:
        time.sleep(seconds)
    if cancellable and CANCELLED.is_set():
        raise cancelled_error()
    return woken


def on_signal(callback: Callable[[str], None]) -> None:
    """Call `callback(signal name)` when a signal cancels the stage (from the handler: it
    must only set things in motion)."""
    _on_signal.append(callback)


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

    def handle(number: int, _: object) -> None:
        name = names[signal.Signals(number)]
        first = not CANCELLED.is_set()
        cancel(name)
        if first:
            for callback in list(_on_signal):
                callback(name)

    previous = {s: signal.signal(s, handle) for s in names}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        _on_signal.clear()


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


# However little time is left, a request may take this long: the last ones of a stage
# (writing a record, releasing the lease) must still be able to get an answer.
MIN_REQUEST_SECONDS = 1.0
# Within a grace period (a rollback, releasing the lease), a request may take this long,
# and one that gets no answer is not tried again: the cluster is taken for hung.
GRACE_REQUEST_SECONDS = 10.0


class Deadline:
    """The moment a stage must give up, shared by its waits, its retries and every
    request (a request's own timeout is capped by what is left).

    A cancel cuts it short (`cut`); a rollback or the release of the cluster lease runs
    within a grace period of its own (`grace`), never beyond a cut."""

    def __init__(self, seconds: float, started: float | None = None) -> None:
        self.seconds = seconds
        self.started = time.monotonic() if started is None else started
        self._end = self.started + seconds
        self._cut: float | None = None
        self._graces: list[float] = []
        self._lock = threading.Lock()
        # Which threads run within a grace period.
        self._local = threading.local()

    @property
    def at(self) -> float:
        with self._lock:
            end = max([self._end, *self._graces])
            return end if self._cut is None else min(end, self._cut)

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def shift(self, seconds: float) -> None:
        """Move the end on: time spent waiting for the cluster lease is not the stage's."""
        with self._lock:
            self._end += seconds

    def cut(self, seconds: float) -> None:
        """End at most `seconds` from now, whatever grace is given later (a cancel)."""
        with self._lock:
            end = time.monotonic() + seconds
            self._cut = end if self._cut is None else min(self._cut, end)

    @contextlib.contextmanager
    def grace(self, seconds: float) -> Iterator[None]:
        """At least `seconds` from now while inside (a rollback after the timeout)."""
        end = time.monotonic() + seconds
        with self._lock:
            self._graces.append(end)
        depth = getattr(self._local, "graces", 0)
        self._local.graces = depth + 1
        try:
            yield
        finally:
            self._local.graces = depth
            with self._lock:
                self._graces.remove(end)

    @property
    def in_grace(self) -> bool:
        """This thread runs within a grace period: a request without an answer ends it."""
        return bool(getattr(self._local, "graces", 0))

    def request_timeout(self, limit: float) -> float:
        """How long the next request may take: `limit`, capped by what is left."""
        if self.in_grace:
            limit = min(limit, GRACE_REQUEST_SECONDS)
        return max(MIN_REQUEST_SECONDS, min(limit, self.remaining()))


def poll_intervals(first: float = FIRST_POLL, limit: float = MAX_POLL) -> Iterator[float]:
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
    wakeup: Wakeup | None = None,
    goal: str = "done",
) -> T:
    """Call `check` until `done` says yes, logging each new state as `what: state`; raise
    Timeout at the deadline with the last state in the message. `wakeup`: the provider's
    news, which ends a pause early. Traced as a span `wait <goal>`: how many looks it
    took, and what woke the last one (the provider's news, or the poll's timer)."""
    with tracing.span(f"wait {goal}", {"treadle.wait.for": what}) as span:
        looks, woken_by_news, woke = 0, 0, "none"
        state: T | None = None
        try:
            last_line, last_logged = "", 0.0
            for interval in poll_intervals():
                state = check()
                looks += 1
                line = f"{what}: {describe(state)}"
                now = time.monotonic()
                if line != last_line or now - last_logged >= PROGRESS_EVERY:
                    log(line)
                    last_line, last_logged = line, now
                if done(state):
                    return state
                if deadline.expired():
                    raise Timeout(
                        f"{what}: not done after {deadline.seconds:g}s ({describe(state)})"
                    )
                if wakeup is not None and wakeup.live:
                    interval = wakeup.safety_net
                news = pause(min(interval, max(0.05, deadline.remaining())), wakeup)
                woken_by_news += news
                woke = "event" if news else "poll"
            raise AssertionError("unreachable")
        finally:
            span.set(
                {
                    "treadle.wait.looks": looks,
                    "treadle.wait.woke_by": woke,
                    "treadle.wait.events": woken_by_news,
                    "treadle.wait.events_live": wakeup is not None and wakeup.live,
                    "treadle.wait.state": None if state is None else describe(state),
                }
            )
