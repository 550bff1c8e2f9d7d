"""Execution windows: when a stage may change a cluster (Spinnaker's "restrict execution
during time window").

    mon-fri 09:00-17:00      weekdays, office hours
    sat,sun 00:00-24:00      all weekend
    22:00-02:00              every night, across midnight (the night of the day it starts)

A stage outside every window is refused (exit 3, nothing changed) with the next window's
start in its result, or (`--outside-window wait`) waits for it within its --timeout. An
optional jitter delays the start by a random time in a range, so that pipelines released
by the same window do not all start in the same second.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from treadle.errors import InputError, Refused
from treadle.waiting import pause

if TYPE_CHECKING:
    from treadle.stages.runtime import Runtime

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OUTSIDE = ("fail", "wait")
_WINDOW = re.compile(r"(?:(?P<days>[a-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})")
# How far ahead a window's next start is looked for: any window opens within a week.
HORIZON = timedelta(days=8)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: int  # minutes after midnight
    end: int  # minutes after midnight; at or before `start`: the next day's

    @classmethod
    def parse(cls, text: str) -> Window:
        found = _WINDOW.fullmatch(text.strip().lower())
        if found is None:
            raise InputError(
                f"invalid --window {text!r}: expected [DAYS] HH:MM-HH:MM, for example "
                "'mon-fri 09:00-17:00' or '22:00-02:00'"
            )
        days = parse_days(found["days"], text) if found["days"] else frozenset(range(7))
        return cls(days, minutes(found["start"], text), minutes(found["end"], text))

    def open_at(self, moment: datetime) -> bool:
        minute = moment.hour * 60 + moment.minute
        today, yesterday = moment.weekday(), (moment.weekday() - 1) % 7
        if self.end > self.start:
            return today in self.days and self.start <= minute < self.end
        # Across midnight: the evening of a listed day, or the morning after one.
        return (today in self.days and minute >= self.start) or (
            yesterday in self.days and minute < self.end
        )

    def starts_after(self, moment: datetime) -> datetime:
        """The first start of this window after `moment`."""
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        for n in range(HORIZON.days):
            candidate = day + timedelta(days=n, minutes=self.start)
            if candidate.weekday() in self.days and candidate > moment:
                return candidate
        raise AssertionError("a window with a day opens within a week")


def minutes(text: str, window: str) -> int:
    hours, mins = (int(part) for part in text.split(":"))
    if not (0 <= hours <= 24 and 0 <= mins < 60) or (hours == 24 and mins):
        raise InputError(f"invalid --window {window!r}: {text} is not a time of day")
    return hours * 60 + mins


def parse_days(text: str, window: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise InputError(
                f"invalid --window {window!r}: days are {', '.join(DAYS)}, a range "
                "(mon-fri) or a list (sat,sun)"
            )
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(b + 1)])
    return frozenset(days)


def timezone(name: str) -> tzinfo:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown --timezone {name!r}: give an IANA name such as UTC or Europe/Berlin"
        ) from None


@dataclass(frozen=True)
class Schedule:
    """When a stage may change a cluster, and how it behaves outside."""

    windows: tuple[Window, ...] = ()
    zone: tzinfo | None = None
    outside: str = "fail"
    jitter: tuple[float, float] = (0.0, 0.0)

    @classmethod
    def parse(
        cls,
        windows: list[str],
        zone: str | None,
        outside: str | None,
        jitter: tuple[float, float] = (0.0, 0.0),
    ) -> Schedule:
        outside = outside or "fail"
        if outside not in OUTSIDE:
            raise InputError(f"unknown --outside-window {outside!r}: choose fail or wait")
        return cls(
            tuple(Window.parse(w) for w in windows), timezone(zone or "UTC"), outside, jitter
        )

    def now(self) -> datetime:
        return datetime.now(self.zone)

    def open_at(self, moment: datetime) -> bool:
        return not self.windows or any(w.open_at(moment) for w in self.windows)

    def next_start(self, moment: datetime) -> datetime:
        return min(w.starts_after(moment) for w in self.windows)

    def delay(self) -> float:
        low, high = self.jitter
        return random.uniform(low, high) if high else 0.0

    def refusal(self, moment: datetime) -> Refused:
        opens = self.next_start(moment)
        return Refused(
            f"outside every execution window ({moment:%a %H:%M %Z}): the next opens "
            f"{opens:%a %Y-%m-%d %H:%M %Z} (--window, --outside-window wait)",
            fields={"next_window": opens.isoformat()},
        )


def gate(rt: Runtime) -> None:
    """Before a stage's first change: its jitter, then its execution windows."""
    schedule = rt.schedule
    delay = schedule.delay()
    if delay:
        left = rt.deadline.remaining()
        if delay >= left:
            raise Refused(
                f"--jitter drew {delay:.1f}s, more than the {left:.1f}s --timeout leaves: "
                "nothing was changed"
            )
        rt.console.info(f"starting in {delay:.1f}s (--jitter)")
        pause(delay)
    moment = schedule.now()
    if schedule.open_at(moment):
        return
    if schedule.outside == "fail":
        raise schedule.refusal(moment)
    opens = schedule.next_start(moment)
    wait = (opens - moment).total_seconds()
    if wait > rt.deadline.remaining():
        refused = schedule.refusal(moment)
        refused.args = (f"{refused}; it opens after --timeout",)
        raise refused
    rt.console.info(f"outside every execution window: waiting until {opens:%a %H:%M %Z}")
    pause(wait)
