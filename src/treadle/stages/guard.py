"""The traffic guard: no stage takes a cluster's serving capacity away unless told to
(--force). By default it keeps the last serving server group of a cluster; with
`--min-capacity-ratio R` it refuses any change after which the cluster would serve R of
the instances it serves now, or fewer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from treadle.errors import InputError, Refused
from treadle.providers.base import ServerGroup

MAX_RATIO = 0.5


def check_ratio(ratio: float | None) -> float | None:
    if ratio is not None and not 0 <= ratio <= MAX_RATIO:
        raise InputError(f"--min-capacity-ratio must be between 0 and {MAX_RATIO:g}, not {ratio:g}")
    return ratio


def serving(groups: Sequence[ServerGroup]) -> int:
    return sum(g.instances for g in groups if g.serving)


def guard_capacity(
    siblings: Sequence[ServerGroup],
    after: Mapping[str, int],
    action: str,
    *,
    force: bool,
    ratio: float | None = None,
) -> None:
    """Refuse (exit 3) a change after which groups of `siblings` (a cluster in a region)
    serve the instances `after` names (0: disabled or destroyed), when it leaves the
    cluster serving nothing, or (with `ratio`) no more than `ratio` of what it serves
    now."""
    if force:
        return
    now = serving(siblings)
    remaining = sum(
        after.get(g.name, g.instances) if g.enabled else 0 for g in siblings if g.name in after
    ) + sum(g.instances for g in siblings if g.serving and g.name not in after)
    if now == 0 or remaining == now:
        return
    first = next((g for g in siblings if g.name in after), None)
    where = f"{first.cluster} in {first.region}" if first else "the cluster"
    if remaining == 0:
        names = [g.name for g in siblings if g.name in after and g.serving]
        last = "it is the last enabled server group" if len(names) == 1 else "they serve all"
        raise Refused(
            f"refusing to {action}: {last} of {where} and "
            f"{'serves' if len(names) == 1 else 'serve'} traffic (--force to do it anyway)"
        )
    if ratio is not None and remaining <= ratio * now:
        raise Refused(
            f"refusing to {action}: {where} would serve {remaining} of the {now} instances "
            f"it serves now, not more than --min-capacity-ratio {ratio:g} "
            "(--force to do it anyway)"
        )
