"""Taking a server group out of service without dropping a request: out of its cluster's
load balancing first (its alias where the provider has one, ALIAS; marathon-lb's
deployment group on Marathon), then a drain while what it serves
finishes and load balancers stop sending it more, then disabled, or, with
--keep-running, left running outside the alias so that enable and rollback put it back
at once (KEEP_RUNNING)."""

from __future__ import annotations

from treadle.providers.base import (
    KEEP_RUNNING,
    LABEL_KEPT_RUNNING,
    Records,
    ServerGroup,
)
from treadle.stages.runtime import Runtime
from treadle.stages.waits import wait_healthy
from treadle.waiting import pause


def take_out(
    rt: Runtime, group: ServerGroup, records: Records, *, keep: bool | None = None
) -> None:
    """Disable `group` writing `records`; `keep`: leave it running (default: as asked,
    where the provider can)."""
    caps = rt.provider.capabilities
    if group.serving and rt.provider.leave(group) and rt.drain:
        rt.console.info(
            f"{group.name} is out of {group.cluster}'s load balancing: draining {rt.drain:g}s"
        )
        pause(min(rt.drain, rt.deadline.remaining()))
    running = (rt.keep_running if keep is None else keep) and KEEP_RUNNING in caps
    marked = {**records, LABEL_KEPT_RUNNING: "true" if running else None}
    rt.provider.disable(group, marked, keep_running=running)
    wait_healthy(rt, group)
