"""Deploy strategies as plans: the single steps (resize, disable, destroy) that take a
cluster from where it is to where the strategy leaves it, computed from the cluster as it
is and from its records, before anything changes.

A plan only moves towards its end: a rerun of a deploy that was killed halfway plans
from the records its first attempt left (full sizes, which groups it disabled), so it
carries on where the first attempt stopped instead of starting over from a shrunken
cluster. Only server groups older than the new one are ever in a plan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from treadle.providers.base import ServerGroup
from treadle.stages.records import disabled_by, kept_running

STRATEGIES = ("none", "highlander", "red-black", "rolling-red-black", "canary")
DEFAULT_STEPS = (25, 50, 100)


@dataclass(frozen=True)
class Step:
    verb: str  # resize | disable | destroy
    group: str
    # resize: the size to reach.
    instances: int = 0

    def describe(self) -> str:
        if self.verb == "resize":
            return f"resize {self.group} to {self.instances}"
        return f"{self.verb} {self.group}"


def strategy_steps(
    strategy: str,
    new: str,
    target: int,
    others: Sequence[ServerGroup],
    sizes: Mapping[str, int],
    *,
    grown: int = 0,
    steps: Sequence[int] = DEFAULT_STEPS,
    max_remaining: int | None = None,
) -> list[Step]:
    """The steps after the new group `new` is healthy. `others`: the cluster's older
    groups, newest first; `sizes`: their sizes when whole (treadle.stages.records);
    `grown`: the new group's size now (a rolling deploy's rerun)."""
    if strategy == "highlander":
        return [Step("destroy", g.name) for g in reversed(others)]
    plan: list[Step] = []
    if strategy == "rolling-red-black":
        # Shrunk step by step: the enabled ones (one this deploy began to disable is only
        # finished off below).
        shrinking = [g for g in others if g.enabled]
        now = {g.name: g.instances for g in shrinking}
        for pct in steps:
            size = math.ceil(target * pct / 100)
            if size > grown:
                plan.append(Step("resize", new, size))
                grown = size
            for g in shrinking:
                if pct == 100:
                    continue
                keep = sizes[g.name] - sizes[g.name] * pct // 100
                if keep < now[g.name]:
                    plan.append(Step("resize", g.name, keep))
                    now[g.name] = keep
    if strategy in ("red-black", "rolling-red-black"):
        # Every enabled one, serving or not (a killed deploy's group left at 0 is enabled
        # too, and remembers its size once disabled); and one disabled by an interrupted
        # disable but still running: finish it.
        plan += [
            Step("disable", g.name)
            for g in others
            if g.enabled or (g.instances and not kept_running(g))
        ]
        if max_remaining is not None:
            plan += [Step("destroy", g.name) for g in reversed(others[max_remaining:])]
    return plan


def touched(plan: Sequence[Step], new: str, others: Sequence[ServerGroup]) -> list[ServerGroup]:
    """The older groups whose state this deploy changes: named by a step, or already
    disabled by an earlier attempt of it."""
    named = {s.group for s in plan}
    return [g for g in others if g.name in named or disabled_by(g) == new]
