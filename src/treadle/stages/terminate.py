"""terminate-instances: kill chosen instances of a server group (a pipeline's chaos step)
and, unless --no-wait, wait until their replacements are healthy; with --decrement the
group shrinks by as many instead. The traffic guard applies: a server group left with
nothing serving is refused unless --force."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from treadle.errors import InputError, StageFailed
from treadle.providers.base import DECREMENT_CHOSEN, TERMINATE, Health, Instance, ServerGroup
from treadle.stages.guard import guard_capacity
from treadle.stages.journal import note, recall
from treadle.stages.runtime import Runtime
from treadle.stages.selection import Selector
from treadle.stages.waits import hopeless, join_name, refetch, watching
from treadle.waiting import wait_for


@dataclass(frozen=True)
class TerminateRequest:
    selector: Selector
    instances: tuple[str, ...] = ()
    count: int | None = None
    random: bool = False
    decrement: bool = False
    force: bool = False

    def check(self) -> TerminateRequest:
        if bool(self.instances) == (self.count is not None):
            raise InputError("give --instance ID (repeatable) or --count N, one of them")
        if self.count is not None and self.count < 1:
            raise InputError(f"--count must be 1 or more, not {self.count}")
        if self.random and self.count is None:
            raise InputError("--random goes with --count")
        return self


def chosen(request: TerminateRequest, running: Sequence[Instance], where: str) -> list[str]:
    ids = [i.id for i in running]
    if request.instances:
        unknown = [i for i in request.instances if i not in ids]
        if unknown:
            raise InputError(
                f"no instance {', '.join(unknown)} in {where} (it has {', '.join(ids) or 'none'})"
            )
        return list(dict.fromkeys(request.instances))
    assert request.count is not None
    if request.count > len(ids):
        raise InputError(f"--count {request.count}: {where} runs {len(ids)} instances")
    return random.sample(ids, request.count) if request.random else ids[: request.count]


def terminate_instances(rt: Runtime, request: TerminateRequest) -> dict[str, object]:
    request = request.check()
    if TERMINATE not in rt.provider.capabilities:
        raise InputError(f"the {rt.provider.name} provider cannot terminate instances")
    selector = request.selector.checked(rt.provider)
    where = (selector.region, selector.cluster_name, replace(request, selector=selector))
    rt.hold(selector.region, selector.cluster_name)
    decided = recall(rt, *where, group=str, ids=list, left=int)
    group, siblings = selector.require(rt)
    if decided is not None:
        # A retry: what its first attempt chose, never another batch; while the group is
        # as the attempt left it (before or after), else decided anew.
        named = next((g for g in siblings if g.name == decided["group"]), None)
        sizes = (decided["left"], decided["left"] + len(decided["ids"]))
        if named and named.enabled and (not request.decrement or named.instances in sizes):
            group = named
        else:
            decided = None
    if not group.enabled:
        raise InputError(f"{group.name} is disabled: it runs no instances to terminate")
    chooses = request.decrement and DECREMENT_CHOSEN not in rt.provider.capabilities
    if chooses and request.instances:
        raise InputError(
            f"the {rt.provider.name} provider chooses which instances go when a server group "
            "shrinks: give --count with --decrement, not --instance"
        )
    running = rt.provider.instances(group)
    if decided is not None:
        return terminated_before(rt, request, group, decided, running)
    ids = chosen(request, running, f"{group.name} in {group.region}")
    left = group.instances - len(ids)
    guard_capacity(
        siblings,
        {group.name: left},
        f"terminate {len(ids)} of the {group.instances} instances of {group.name}",
        force=request.force,
        ratio=rt.min_capacity_ratio,
    )
    fields: dict[str, object] = {
        "server_group": group.name,
        "cluster": group.cluster.name,
        "region": group.region,
        "terminated": ids,
        "instances": left if request.decrement else group.instances,
    }
    if rt.dry_run:
        rt.plan(f"terminate {', '.join(ids)} of {group.name} in {group.region}")
        return fields
    rt.console.info(f"terminating {', '.join(ids)} of {group.name}")
    note(rt, *where, group=group.name, ids=ids, left=left)
    rt.provider.terminate(group, ids, decrement=request.decrement)
    settle(rt, group, set() if chooses else set(ids))
    return fields


def settle(rt: Runtime, group: ServerGroup, gone: set[str]) -> None:
    if rt.wait:
        # Where the provider chose, it is enough that the group is healthy at its size.
        replaced(rt, refetch(rt, group), gone)
    # The replacements start outside the cluster's name, as every new instance does.
    join_name(rt, refetch(rt, group))


def terminated_before(
    rt: Runtime,
    request: TerminateRequest,
    group: ServerGroup,
    decided: dict[str, Any],
    running: Sequence[Instance],
) -> dict[str, object]:
    """The retry of a run that chose its instances already: it finishes that, no more
    (those still running are terminated; a shrink goes no further than it decided)."""
    ids = [str(i) for i in decided["ids"]]
    left: int = decided["left"]
    rt.console.info(f"an earlier attempt of this run terminated {', '.join(ids)} of {group.name}")
    chooses = request.decrement and DECREMENT_CHOSEN not in rt.provider.capabilities
    still = [i.id for i in running if i.id in ids]
    if chooses:
        # The provider chose which went: only how many more is known.
        still = [i.id for i in running][: max(0, group.instances - left)]
    elif request.decrement and group.instances <= left:
        still = []
    if still and not rt.dry_run:
        rt.provider.terminate(group, still, decrement=request.decrement)
    if not rt.dry_run:
        settle(rt, group, set() if chooses else set(ids))
    return {
        "server_group": group.name,
        "cluster": group.cluster.name,
        "region": group.region,
        "terminated": ids,
        "instances": left if request.decrement else group.instances,
    }


def replaced(rt: Runtime, group: ServerGroup, gone: set[str]) -> Health:
    """Wait until none of `gone` runs and the group is healthy at its size."""

    def check() -> tuple[Health, int]:
        # Instances first: health read before them could predate the kill (all running)
        # while the instances, read after, no longer list the killed one.
        still = sum(1 for i in rt.provider.instances(group) if i.id in gone)
        health = rt.provider.health(group)
        why = hopeless(health)
        if why:
            raise StageFailed(f"{group.name} cannot become healthy: {why}")
        return health, still

    with rt.console.section(f"waiting for {group.name}"), watching(rt, group) as wakeup:
        health, _ = wait_for(
            check,
            lambda state: state[0].ok and state[1] == 0,
            deadline=rt.deadline,
            describe=lambda state: (
                state[0].describe()
                + (f", {state[1]} terminated still stopping" if state[1] else "")
            ),
            what=group.name,
            log=rt.console.info,
            wakeup=wakeup,
        )
    return health
