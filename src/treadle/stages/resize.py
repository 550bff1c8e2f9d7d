"""resize: set a server group's size, record it, then wait until it is reached and
healthy."""

from __future__ import annotations

import math
from dataclasses import dataclass

from treadle.errors import InputError
from treadle.limits import MAX_INSTANCES, check_instances
from treadle.stages.guard import guard_capacity
from treadle.stages.journal import note, recall
from treadle.stages.records import capacities
from treadle.stages.runtime import Runtime
from treadle.stages.selection import Selector
from treadle.stages.waits import refetch, wait_healthy


@dataclass(frozen=True)
class Size:
    """Exactly one of: an exact size, a number to add or remove, a percentage change."""

    instances: int | None = None
    scale_up: int | None = None
    scale_down: int | None = None
    scale_pct: float | None = None
    # The size of the cluster's largest server group.
    scale_to_cluster: bool | None = None

    def check(self) -> Size:
        given = [n for n, v in vars(self).items() if v is not None and v is not False]
        if len(given) != 1:
            names = ", ".join(f"--{n.replace('_', '-')}" for n in given) or "none"
            raise InputError(
                "give exactly one of --instances, --scale-up, --scale-down, --scale-pct, "
                f"--scale-to-cluster (given: {names})"
            )
        for name in ("instances", "scale_up", "scale_down"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise InputError(f"--{name.replace('_', '-')} must be 0 or more, not {value}")
        if self.scale_pct is not None and self.scale_pct < -100:
            raise InputError(f"--scale-pct cannot shrink by more than 100%, not {self.scale_pct:g}")
        check_instances(self.instances, "--instances")
        check_instances(self.scale_up, "--scale-up")
        if self.scale_pct is not None and self.scale_pct > MAX_INSTANCES * 100:
            raise InputError(f"--scale-pct {self.scale_pct:g} would grow beyond any cluster")
        return self

    def apply(self, current: int, largest: int) -> int:
        if self.scale_to_cluster:
            return largest
        if self.instances is not None:
            return self.instances
        if self.scale_up is not None:
            return current + self.scale_up
        if self.scale_down is not None:
            return max(0, current - self.scale_down)
        # Growth rounds up and shrinking rounds down, so any non-zero change moves the size.
        change = current * (self.scale_pct or 0) / 100
        return max(0, current + (math.ceil(change) if change > 0 else math.floor(change)))


def resize(
    rt: Runtime, selector: Selector, size: Size, *, force: bool = False
) -> dict[str, object]:
    size = size.check()
    selector = selector.checked(rt.provider)
    where = (selector.region, selector.cluster_name, (selector, size))
    rt.hold(selector.region, selector.cluster_name)
    decided = recall(rt, *where, group=str, size=int, previous=int)
    group, siblings = selector.require(rt)
    if decided is not None:
        # A retry: the group and size its first attempt chose, not one more step; while
        # that group is as the attempt left it (before or after), else decided anew.
        named = next((g for g in siblings if g.name == decided["group"]), None)
        if named and named.enabled and named.instances in (decided["previous"], decided["size"]):
            group = named
        else:
            decided = None
    if not group.enabled:
        raise InputError(f"{group.name} is disabled: enable it before resizing it")
    target = size.apply(group.instances, max(capacities(siblings).values()))
    if decided is not None:
        target = int(decided["size"])
        rt.console.info(f"an earlier attempt of this run resized {group.name} to {target}")
    check_instances(target, f"resize {group.name} to")
    guard_capacity(
        siblings,
        {group.name: target},
        f"resize {group.name} to {target}",
        force=force,
        ratio=rt.min_capacity_ratio,
    )
    fields = {
        "server_group": group.name,
        "cluster": group.cluster.name,
        "region": group.region,
        "previous_instances": decided["previous"] if decided else group.instances,
    }
    if rt.dry_run:
        rt.plan(f"resize {group.name} in {group.region} from {group.instances} to {target}")
        return {**fields, "instances": group.instances}
    rt.console.info(f"resizing {group.name} in {group.region} from {group.instances} to {target}")
    if decided is None:
        note(rt, *where, group=group.name, size=target, previous=group.instances)
    rt.provider.resize(group, target)
    wait_healthy(rt, refetch(rt, group))
    return {**fields, "instances": target}
