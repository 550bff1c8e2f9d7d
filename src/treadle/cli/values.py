"""Option values as a stage takes them: durations, whole numbers, numbers, lists. Each
error is one line naming the option."""

from __future__ import annotations

import math
import re
from typing import Any

from treadle.errors import InputError

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def duration(text: Any, flag: str) -> float:
    """Seconds, from `600`, `90s`, `10m`, `1h30m`."""
    m = _DURATION.fullmatch(str(text).strip())
    if not m or not any(m.groups()):
        raise InputError(
            f"invalid {flag} {text!r}: expected seconds or a duration like 90s, 10m, 1h"
        )
    h, mins, s = (float(g) if g else 0.0 for g in m.groups())
    seconds = h * 3600 + mins * 60 + s
    if seconds <= 0:
        raise InputError(f"invalid {flag} {text!r}: must be more than 0")
    if seconds > MAX_SECONDS:
        raise InputError(f"invalid {flag} {_short(text)}: more than a year")
    return seconds


# A year: longer is a typo (and 400 nines would be infinite).
MAX_SECONDS = 366 * 24 * 3600


def _short(text: Any) -> str:
    shown = repr(str(text))
    return shown if len(shown) <= 40 else shown[:37] + "...'"


def whole(value: Any, flag: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InputError(f"invalid {flag} {value!r}: expected a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError(f"invalid {flag} {value!r}: expected a whole number") from None


def number(value: Any, flag: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        found = float(str(value).strip())
    except ValueError:
        raise InputError(f"invalid {flag} {value!r}: expected a number") from None
    if not math.isfinite(found):
        raise InputError(f"invalid {flag} {value!r}: expected a finite number")
    return found


def percentages(text: Any, flag: str) -> tuple[int, ...]:
    """`25,50,100`, or a list from a placeholder."""
    parts = text if isinstance(text, list) else str(text).split(",")
    return tuple(whole(p, flag) or 0 for p in parts)


def duration_range(text: Any, flag: str) -> tuple[float, float]:
    """`0s-60s`, `10-30` (seconds), `1m-2m`."""
    low, sep, high = str(text).partition("-")
    if not sep:
        raise InputError(f"invalid {flag} {text!r}: expected a range, for example 0s-60s")
    least = 0.0 if low.strip() in ("0", "0s") else duration(low, flag)
    most = duration(high, flag)
    if most < least:
        raise InputError(f"invalid {flag} {text!r}: the range goes backwards")
    return least, most
