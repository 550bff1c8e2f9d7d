"""Taking a server group out of service without dropping a request. On Docker and Swarm
the provider takes its instances out of the cluster's alias (ALIAS) as they stop, after
what they serve, never cutting them off while they serve (Swarm: the engine drops a task
from the alias 2 s before it signals it; Docker: a container leaves the alias when it
exits, after its stop signal and grace period). With --keep-running (KEEP_RUNNING) the
group runs on outside the alias, so that enable and rollback put it back at once. Where a
load balancer has taken the group out of rotation by itself while it runs (marathon-lb on
Marathon), --drain waits before it stops, for what it serves to finish."""

from __future__ import annotations

from treadle.providers.base import (
    KEEP_RUNNING,
    LABEL_DISABLED_RUN,
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
    if group.serving and rt.drain and rt.provider.rotated_out(group):
        rt.console.info(
            f"{group.name} is out of {group.cluster}'s load balancing: draining {rt.drain:g}s"
        )
        pause(min(rt.drain, rt.deadline.remaining()))
    running = (rt.keep_running if keep is None else keep) and KEEP_RUNNING in (
        rt.provider.capabilities
    )
    marked = {
        **records,
        LABEL_KEPT_RUNNING: "true" if running else None,
        LABEL_DISABLED_RUN: rt.run_key,
    }
    rt.provider.disable(group, marked, keep_running=running)
    wait_healthy(rt, group)
