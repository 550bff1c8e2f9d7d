"""enable and disable: take a server group out of service keeping its definition and
recorded size, and bring it back at that size."""

from __future__ import annotations

from treadle.stages.guard import guard_capacity
from treadle.stages.records import capacities, capacity, disabling, enabling, kept_running
from treadle.stages.runtime import Runtime
from treadle.stages.selection import Selector
from treadle.stages.traffic import take_out
from treadle.stages.waits import group_fields, refetch, wait_healthy


def disable(rt: Runtime, selector: Selector, *, force: bool = False) -> dict[str, object]:
    selector = selector.checked(rt.provider)
    rt.hold(selector.region, selector.cluster_name)
    group, siblings = selector.require(rt)
    # Marked disabled with instances still running: an interrupted disable to finish.
    if not group.enabled and (not group.instances or kept_running(group)):
        rt.console.info(f"{group.name} is already disabled")
        return {**group_fields(group), "changed": False}
    guard_capacity(
        siblings, {group.name: 0}, f"disable {group.name}", force=force, ratio=rt.min_capacity_ratio
    )
    size = capacities(siblings)[group.name]
    if rt.dry_run:
        rt.plan(f"disable {group.name} in {group.region} (remembering {size} instances)")
        return {**group_fields(group), "changed": False}
    rt.console.info(f"disabling {group.name} in {group.region}")
    take_out(rt, group, disabling(group, size))
    return {**group_fields(refetch(rt, group)), "changed": True}


def enable(rt: Runtime, selector: Selector) -> dict[str, object]:
    selector = selector.checked(rt.provider)
    rt.hold(selector.region, selector.cluster_name)
    group, _ = selector.require(rt)
    size = capacity(group)
    if group.enabled and group.instances == size:
        rt.console.info(f"{group.name} is already enabled")
        if not rt.dry_run:
            # An enable cut short (a CI's retry): its instances may be starting still.
            wait_healthy(rt, group)
        return {**group_fields(group), "changed": False}
    if rt.dry_run:
        rt.plan(f"enable {group.name} in {group.region} at {size} instances")
        return {**group_fields(group), "changed": False}
    rt.console.info(f"enabling {group.name} in {group.region} at {size} instances")
    rt.provider.enable(group, size, enabling(size))
    enabled = refetch(rt, group)
    wait_healthy(rt, enabled)
    return {**group_fields(enabled), "changed": True}
