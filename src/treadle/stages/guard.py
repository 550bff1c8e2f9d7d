"""The traffic guard: no stage takes away the last serving server group of a cluster
unless told to (--force)."""

from __future__ import annotations

from treadle.errors import Refused
from treadle.providers.base import ServerGroup


def guard_capacity(
    group: ServerGroup, siblings: list[ServerGroup], action: str, *, force: bool
) -> None:
    """Refuse (exit 3) to `action` the last enabled, serving server group of its
    cluster."""
    if force or not group.serving:
        return
    if any(g.serving for g in siblings if g.name != group.name):
        return
    raise Refused(
        f"refusing to {action} {group.name}: it is the last enabled server group of "
        f"{group.cluster} in {group.region} and serves traffic (--force to do it anyway)"
    )
