"""Taking a server group out of service without dropping a request: out of its cluster's
alias first (where the provider has one: ALIAS), then a drain while what it serves
finishes and load balancers stop sending it more, then disabled, or, with
--keep-running, left running outside the alias so that enable and rollback put it back
at once (KEEP_RUNNING)."""

from __future__ import annotations

from treadle.providers.base import (
    ALIAS,
    KEEP_RUNNING,
    LABEL_KEPT_RUNNING,
    LABEL_NETWORK,
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
    if ALIAS in caps and group.labels.get(LABEL_NETWORK) and group.serving:
        rt.provider.leave(group)
        if rt.drain:
            rt.console.info(
                f"{group.name} left the alias of {group.cluster}: draining {rt.drain:g}s"
            )
            pause(min(rt.drain, rt.deadline.remaining()))
    running = (rt.keep_running if keep is None else keep) and KEEP_RUNNING in caps
    marked = {**records, LABEL_KEPT_RUNNING: "true" if running else None}
    rt.provider.disable(group, marked, keep_running=running)
    wait_healthy(rt, group)
