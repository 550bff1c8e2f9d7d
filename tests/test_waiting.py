"""The wait loop's pauses: ended early by a provider's news, at once by a cancel."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from treadle import waiting
from treadle.errors import Cancelled
from treadle.waiting import Deadline, Wakeup, pause, shielded, wait_for

# Far longer than any of these tests may take: a pause that lasts it was not ended.
LONG = 30.0


@pytest.fixture(autouse=True)
def not_cancelled() -> Iterator[None]:
    waiting.CANCELLED.clear()
    yield
    waiting.CANCELLED.clear()


def later(seconds: float, action: object) -> None:
    threading.Timer(seconds, action).start()  # type: ignore[arg-type]


def test_news_ends_a_pause() -> None:
    wakeup = Wakeup()
    later(0.05, wakeup.wake)
    started = time.monotonic()
    pause(LONG, wakeup)
    assert time.monotonic() - started < LONG / 2


def test_news_before_the_pause_is_not_lost() -> None:
    wakeup = Wakeup()
    wakeup.wake()
    started = time.monotonic()
    pause(LONG, wakeup)
    assert time.monotonic() - started < LONG / 2


def test_progress_is_looked_at_within_the_nudge_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(waiting, "NUDGE_SECONDS", 0.1)
    wakeup = Wakeup()
    started = time.monotonic()  # before the nudge, which counts from its own moment
    wakeup.nudge()
    pause(LONG, wakeup)
    assert 0.1 <= time.monotonic() - started < LONG / 2


def test_a_cancel_ends_a_pause_that_waits_for_news() -> None:
    wakeup = Wakeup()
    later(0.05, lambda: waiting.cancel("SIGTERM"))
    started = time.monotonic()
    with pytest.raises(Cancelled, match="SIGTERM"):
        pause(LONG, wakeup)
    assert time.monotonic() - started < LONG / 2


def test_a_shielded_pause_ends_on_news_not_on_a_cancel() -> None:
    """The clean-up after a cancel or a timeout (a rollback) waits on news too."""
    waiting.cancel("SIGTERM")
    wakeup = Wakeup()
    started = time.monotonic()  # before the timer starts: it may fire 0.2 s after it, not after us
    later(0.2, wakeup.wake)
    with shielded():
        pause(LONG, wakeup)
    assert 0.2 <= time.monotonic() - started < LONG / 2


def test_a_live_wait_checks_on_news_not_on_a_poll() -> None:
    wakeup = Wakeup()
    wakeup.live = True
    news_at: list[float] = []
    checks: list[float] = []

    def news() -> None:
        news_at.append(time.monotonic())
        wakeup.wake()

    def check() -> int:
        checks.append(time.monotonic())
        if len(checks) == 1:
            later(0.5, news)
        return len(checks)

    wait_for(
        check,
        lambda n: n == 2,
        deadline=Deadline(LONG),
        describe=str,
        what="test",
        log=lambda line: None,
        wakeup=wakeup,
    )
    assert checks[1] >= news_at[0], "a poll came before the news"


def test_a_wait_without_live_news_polls() -> None:
    wakeup = Wakeup()
    checks: list[int] = []

    def check() -> int:
        checks.append(1)
        return len(checks)

    wait_for(
        check,
        lambda n: n == 4,
        deadline=Deadline(LONG),
        describe=str,
        what="test",
        log=lambda line: None,
        wakeup=wakeup,
    )
    assert len(checks) == 4


def test_a_live_wait_still_looks_at_its_streams_safety_net() -> None:
    """News that never comes (a restarted container's stable second brings no Docker
    event) is covered by a look at the stream's own safety-net interval."""
    wakeup = Wakeup(safety_net=0.3)
    wakeup.live = True
    checks: list[float] = []

    def check() -> int:
        checks.append(time.monotonic())
        return len(checks)

    wait_for(
        check,
        lambda n: n == 3,
        # Far shorter than the default safety net (10 s): only the stream's own fits.
        deadline=Deadline(5),
        describe=str,
        what="test",
        log=lambda line: None,
        wakeup=wakeup,
    )
    assert len(checks) == 3, "the safety net did not bring the looks without news"
