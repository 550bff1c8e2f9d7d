"""What a stage records on server groups, so that sizes are restored from records and
never inferred from a half-finished state.

Records are written only when a group's instances start or stop anyway (it is created,
disabled or enabled): on Marathon any change to a running app's labels restarts its
tasks. So:

- a deploy writes on the group it creates the size it decided (LABEL_CAPACITY) and the
  size of every older group it will shrink or disable (LABEL_REPLACES);
- disabling writes the size to come back at (LABEL_DISABLED_INSTANCES, which marks the
  group disabled), the deploy that did it (LABEL_DISABLED_BY) and the run key of the
  stage that did it (LABEL_DISABLED_RUN: its rerun finds its work done);
- an enabled group's size is what it runs, unless a deploy is in flux: the newest group
  of the cluster replaces groups still enabled. Then the new group counts at the size
  its deploy decided, and the groups it replaces at the sizes they had before it began
  (a rolling deploy killed halfway has them half grown and half shrunk).

Reruns, rollbacks and `enable` read them back here, and only here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from treadle.providers.base import (
    LABEL_CANARY,
    LABEL_CAPACITY,
    LABEL_DISABLED_BY,
    LABEL_DISABLED_INSTANCES,
    LABEL_DISABLED_RUN,
    LABEL_KEPT_RUNNING,
    LABEL_REPLACES,
    Records,
    ServerGroup,
)


def recorded(group: ServerGroup, label: str) -> int | None:
    value = group.labels.get(label, "")
    return int(value) if value.isdigit() else None


def capacity(group: ServerGroup) -> int:
    """One group's size when enabled and whole, by itself: a disabled group's remembered
    size, an enabled group's current size (see `capacities` for a cluster in flux)."""
    if not group.enabled:
        for label in (LABEL_DISABLED_INSTANCES, LABEL_CAPACITY):
            size = recorded(group, label)
            if size is not None:
                return size
    return group.instances


def replaces(group: ServerGroup) -> dict[str, int]:
    """The older groups a deploy's new group replaces, with their sizes before it."""
    found: dict[str, int] = {}
    for item in group.labels.get(LABEL_REPLACES, "").split(","):
        name, _, size = item.partition("=")
        if name and size.isdigit():
            found[name] = int(size)
    return found


def replacing(sizes: Mapping[str, int]) -> Records:
    """The record of the groups a new group replaces."""
    return {LABEL_REPLACES: ",".join(f"{name}={size}" for name, size in sizes.items()) or None}


def capacities(groups: Sequence[ServerGroup]) -> dict[str, int]:
    """Each group's size when enabled and whole, given its cluster (newest first)."""
    sizes = {g.name: capacity(g) for g in groups}
    newest = next((g for g in groups if g.enabled), None)
    if newest is None:
        return sizes
    before = replaces(newest)
    in_flux = any(g.enabled and g.name in before for g in groups if g is not newest)
    if in_flux:
        sizes[newest.name] = max(newest.instances, recorded(newest, LABEL_CAPACITY) or 0)
        for g in groups:
            if g.enabled and g.name in before:
                sizes[g.name] = max(g.instances, before[g.name])
    return sizes


def disabling(group: ServerGroup, size: int, by: str | None = None) -> Records:
    """The records of a group being disabled: the size to come back at and, for a
    deploy's strategy, the server group that took over (`by`)."""
    return {LABEL_CAPACITY: str(size), LABEL_DISABLED_INSTANCES: str(size), LABEL_DISABLED_BY: by}


def enabling(size: int) -> Records:
    return {
        LABEL_CAPACITY: str(size),
        LABEL_DISABLED_INSTANCES: None,
        LABEL_DISABLED_BY: None,
        LABEL_DISABLED_RUN: None,
        LABEL_KEPT_RUNNING: None,
    }


def in_service(group: ServerGroup) -> bool:
    """Serving, or marked disabled by a take-out that was cut short (a killed stage): its
    instances still run, and it was not meant to run on (--keep-running)."""
    return group.serving or (not group.enabled and group.instances > 0 and not kept_running(group))


def kept_running(group: ServerGroup) -> bool:
    """Disabled, and left running outside its cluster's alias on purpose (--keep-running):
    not an interrupted disable."""
    return not group.enabled and bool(group.labels.get(LABEL_KEPT_RUNNING))


def disabled_by(group: ServerGroup) -> str | None:
    """The server group whose deploy disabled it, if a deploy did."""
    return group.labels.get(LABEL_DISABLED_BY) or None


def canary_in_flight(groups: Sequence[ServerGroup]) -> tuple[ServerGroup, list[ServerGroup]] | None:
    """(the canary, the groups it replaces) when the cluster's newest group in service is
    a canary that a group it replaces still serves beside (newest first)."""
    newest = next((g for g in groups if in_service(g)), None)
    if newest is None or recorded(newest, LABEL_CANARY) is None:
        return None
    names = replaces(newest)
    replaced = [g for g in groups if g.name in names]
    return (newest, replaced) if any(in_service(g) for g in replaced) else None


def disabled_in(group: ServerGroup, run_key: str | None) -> bool:
    """Taken out of service by the stage run with `run_key`."""
    return bool(run_key) and not group.enabled and group.labels.get(LABEL_DISABLED_RUN) == run_key
