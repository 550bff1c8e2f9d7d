"""destroy: remove a server group, unless it is the last one serving its cluster."""

from __future__ import annotations

from dataclasses import replace

from treadle.stages.guard import guard_capacity
from treadle.stages.journal import note, recall
from treadle.stages.runtime import Runtime
from treadle.stages.selection import Selector
from treadle.stages.waits import wait_gone


def destroy(rt: Runtime, selector: Selector, *, force: bool = False) -> dict[str, object]:
    selector = selector.checked(rt.provider)
    where = (selector.region, selector.cluster_name, selector)
    rt.hold(selector.region, selector.cluster_name)
    decided = recall(rt, *where, group=str)
    if decided is not None:
        # A retry: the group its first attempt chose (`--target oldest` is another now).
        selector = replace(selector, server_group=decided["group"], cluster=None, target=None)
    group, siblings = selector.find(rt)
    if group is None:
        if decided is not None:
            rt.console.info(f"{decided['group']} was destroyed by an earlier attempt of this run")
        else:
            rt.console.info(f"nothing to destroy: {selector.describe()} does not exist")
        return {
            "server_group": selector.server_group,
            "region": selector.region,
            "destroyed": decided is not None,
        }
    guard_capacity(
        siblings, {group.name: 0}, f"destroy {group.name}", force=force, ratio=rt.min_capacity_ratio
    )
    fields = {"server_group": group.name, "cluster": group.cluster.name, "region": group.region}
    if rt.dry_run:
        rt.plan(f"destroy {group.name} in {group.region} ({group.instances} instances)")
        return {**fields, "destroyed": False}
    rt.console.info(f"destroying {group.name} in {group.region}")
    note(rt, *where, group=group.name)
    rt.provider.destroy(group)
    wait_gone(rt, group)
    return {**fields, "destroyed": True}
