"""What a stage records on a server group, so that sizes are restored from records and
never inferred from a half-finished state: a deploy writes the size it decided on the
group it creates, a strategy writes a group's full size on it before it shrinks it, and
disabling remembers the size and which deploy disabled it. Reruns, rollbacks and
`enable` read them back here, and only here."""

from __future__ import annotations

from treadle.providers.base import (
    LABEL_CAPACITY,
    LABEL_DISABLED_BY,
    LABEL_DISABLED_INSTANCES,
    Records,
    ServerGroup,
)


def recorded(group: ServerGroup, label: str) -> int | None:
    value = group.labels.get(label, "")
    return int(value) if value.isdigit() else None


def capacity(group: ServerGroup) -> int:
    """The size it serves at when enabled and whole.

    A disabled group: the size it remembers. An enabled one: the size a stage recorded,
    unless it runs more now (scaled up by hand or by an autoscaler since). A group half
    shrunk by an interrupted deploy thus counts at its full size; one scaled down by hand
    since its size was recorded counts at the larger, recorded size: when the two
    disagree, a stage errs towards capacity, never away from it."""
    if not group.enabled:
        for label in (LABEL_DISABLED_INSTANCES, LABEL_CAPACITY):
            size = recorded(group, label)
            if size is not None:
                return size
        return group.instances
    return max(group.instances, recorded(group, LABEL_CAPACITY) or 0)


def sized(size: int) -> Records:
    """The records of a group set to serve at `size`."""
    return {LABEL_CAPACITY: str(size)}


def disabling(group: ServerGroup, by: str | None = None) -> Records:
    """The records of a group being disabled: the size to come back at and, for a
    deploy's strategy, the server group that took over (`by`)."""
    size = str(capacity(group))
    return {LABEL_CAPACITY: size, LABEL_DISABLED_INSTANCES: size, LABEL_DISABLED_BY: by}


def enabling(group: ServerGroup) -> Records:
    return {
        LABEL_CAPACITY: str(capacity(group)),
        LABEL_DISABLED_INSTANCES: None,
        LABEL_DISABLED_BY: None,
    }


def disabled_by(group: ServerGroup) -> str | None:
    """The server group whose deploy disabled it, if a deploy did."""
    return group.labels.get(LABEL_DISABLED_BY) or None
