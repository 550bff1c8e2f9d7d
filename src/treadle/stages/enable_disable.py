"""enable and disable: take a server group out of service keeping its definition and size,
and bring it back."""

from __future__ import annotations

from treadle.stages.common import (
    Runtime,
    Selector,
    group_fields,
    guard_capacity,
    refetch,
    wait_healthy,
)


def disable(rt: Runtime, selector: Selector, *, force: bool = False) -> dict[str, object]:
    selector = selector.checked(rt.provider)
    group, siblings = selector.require(rt)
    if not group.enabled:
        rt.console.info(f"{group.name} is already disabled")
        return {**group_fields(group), "changed": False}
    guard_capacity(group, siblings, "disable", force=force)
    if rt.dry_run:
        rt.plan(f"disable {group.name} in {group.region} (remembering {group.instances} instances)")
        return {**group_fields(group), "changed": False}
    rt.console.info(f"disabling {group.name} in {group.region}")
    rt.provider.disable(group, remember=group.instances)
    wait_healthy(rt, refetch(rt, group))
    return {**group_fields(refetch(rt, group)), "changed": True}


def enable(rt: Runtime, selector: Selector) -> dict[str, object]:
    selector = selector.checked(rt.provider)
    group, _ = selector.require(rt)
    if group.enabled:
        rt.console.info(f"{group.name} is already enabled")
        return {**group_fields(group), "changed": False}
    if rt.dry_run:
        rt.plan(f"enable {group.name} in {group.region} at {group.size} instances")
        return {**group_fields(group), "changed": False}
    rt.console.info(f"enabling {group.name} in {group.region} at {group.size} instances")
    rt.provider.enable(group)
    enabled = refetch(rt, group)
    wait_healthy(rt, enabled)
    return {**group_fields(enabled), "changed": True}
