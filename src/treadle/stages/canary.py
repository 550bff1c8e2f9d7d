"""promote and abort: finish or undo a canary that `deploy --strategy canary` started,
from any later job or pipeline, with no state but the cluster's.

A canary is the newest enabled server group of a cluster that its deploy recorded as one
(LABEL_CANARY, the size to grow it to) while a group it replaces (LABEL_REPLACES) still
serves beside it. promote grows it to that size, waits until it is healthy, then takes
the groups it replaces out of service (red/black's end); abort takes the canary out and
makes sure the groups it replaces serve at their recorded sizes. Both are refused
(exit 3, nothing changed) when there is no canary, except for the rerun of one that
finished (its run key recorded on what it took out, LABEL_DISABLED_RUN): that finds its
work done."""

from __future__ import annotations

from dataclasses import dataclass, replace

from treadle.errors import Refused
from treadle.naming import parse_cluster
from treadle.providers.base import LABEL_CANARY, ServerGroup
from treadle.stages.journal import note, recall
from treadle.stages.records import (
    canary_in_flight,
    capacities,
    disabled_by,
    disabled_in,
    disabling,
    enabling,
    in_service,
    recorded,
    replaces,
)
from treadle.stages.regions import each_region
from treadle.stages.runtime import Runtime
from treadle.stages.selection import cluster_groups
from treadle.stages.traffic import take_out
from treadle.stages.waits import endpoint_fields, refetch, wait_gone, wait_healthy


@dataclass(frozen=True)
class CanaryRequest:
    cluster: str
    regions: tuple[str, ...] = ()
    # abort: destroy the canary instead of disabling it.
    destroy: bool = False

    def check(self, rt: Runtime) -> CanaryRequest:
        parse_cluster(self.cluster)
        regions = [
            rt.provider.check_region(r) for r in self.regions or [rt.provider.default_region]
        ]
        return replace(self, regions=tuple(dict.fromkeys(regions)))


def find_canary(groups: list[ServerGroup], where: str) -> tuple[ServerGroup, list[ServerGroup]]:
    """(the canary, the groups it replaces); Refused when there is none in flight. A
    promote or abort cut short leaves one in flight: its rerun finishes it."""
    found = canary_in_flight(groups)
    if found is not None:
        return found
    newest = next((g for g in groups if in_service(g)), None)
    if newest is None or recorded(newest, LABEL_CANARY) is None:
        raise Refused(f"no canary in {where}: its newest enabled server group is not one")
    raise Refused(f"no canary in {where}: {newest.name} serves alone (promoted already)")


def promote(rt: Runtime, request: CanaryRequest) -> dict[str, object]:
    request = request.check(rt)
    # Every region's refusal before any region is changed.
    for region in request.regions:
        promote_choice(rt, request, region)
    return each_region(request.regions, lambda region: promote_region(rt, request, region))


def abort(rt: Runtime, request: CanaryRequest) -> dict[str, object]:
    request = request.check(rt)
    for region in request.regions:
        abort_choice(rt, request, region)
    return each_region(request.regions, lambda region: abort_region(rt, request, region))


def promoted_in(
    groups: list[ServerGroup], run_key: str | None
) -> tuple[ServerGroup, list[str]] | None:
    """(the canary, the groups taken out) of a promote that the stage run with `run_key`
    finished (a CI's retry of a job that died after its work, before its result)."""
    newest = next((g for g in groups if in_service(g)), None)
    if newest is None or recorded(newest, LABEL_CANARY) is None:
        return None
    names = replaces(newest)
    taken = [
        g.name
        for g in groups
        if g.name in names and disabled_by(g) == newest.name and disabled_in(g, run_key)
    ]
    return (newest, taken) if taken else None


def aborted_in(groups: list[ServerGroup], run_key: str | None) -> ServerGroup | None:
    """The canary an abort run with `run_key` took out, when nothing newer came since."""
    newest = groups[0] if groups else None
    if newest is None or recorded(newest, LABEL_CANARY) is None:
        return None
    return newest if disabled_in(newest, run_key) and not in_service(newest) else None


Found = tuple[list[ServerGroup], ServerGroup, list[ServerGroup]]


def promote_choice(
    rt: Runtime, request: CanaryRequest, region: str
) -> Found | tuple[ServerGroup, list[str]]:
    """(the region's groups, the canary, the groups it replaces), or (the canary, the
    groups taken out) of a promote this run finished; Refused when there is nothing to
    promote."""
    rt.hold(region, request.cluster)
    groups = cluster_groups(rt, region, parse_cluster(request.cluster))
    done = promoted_in(groups, rt.run_key) if canary_in_flight(groups) is None else None
    if done is not None:
        return done
    canary, replaced = find_canary(groups, f"{request.cluster} in {region}")
    if not canary.enabled:
        raise Refused(
            f"{canary.name} in {region} was being aborted when its abort was cut short: "
            "run abort again to finish it"
        )
    return groups, canary, replaced


def promote_region(rt: Runtime, request: CanaryRequest, region: str) -> dict[str, object]:
    found = promote_choice(rt, request, region)
    if len(found) == 2:
        return promoted_already(rt, request, region, *found)
    groups, canary, replaced = found
    sizes = capacities(groups)
    target = recorded(canary, LABEL_CANARY) or canary.instances
    serving = [g for g in replaced if in_service(g)]
    fields: dict[str, object] = {
        "cluster": request.cluster,
        "region": region,
        "server_group": canary.name,
        "instances": target,
        "disabled_server_groups": [g.name for g in serving],
    }
    if rt.dry_run:
        rt.plan(f"resize {canary.name} in {region} to {target}")
        for g in serving:
            rt.plan(f"disable {g.name} in {region}")
        return fields
    rt.console.info(f"promoting {canary.name} in {region}: to {target} instances")
    rt.provider.resize(canary, target)
    wait_healthy(rt, refetch(rt, canary))
    for g in serving:
        take_out(rt, refetch(rt, g), disabling(g, sizes[g.name], by=canary.name))
    return {**fields, **endpoint_fields(refetch(rt, canary))}


def abort_choice(rt: Runtime, request: CanaryRequest, region: str) -> Found | ServerGroup | str:
    """(the region's groups, the canary, the groups it replaces), or the canary an abort
    of this run took out (its name, once this run destroyed it: the journal says so);
    Refused when there is nothing to abort."""
    rt.hold(region, request.cluster)
    groups = cluster_groups(rt, region, parse_cluster(request.cluster))
    if canary_in_flight(groups) is None:
        done = aborted_in(groups, rt.run_key)
        if done is not None:
            return done
        decided = recall(rt, region, request.cluster, ("abort", request), canary=str)
        if decided is not None and decided["canary"] not in {g.name for g in groups}:
            return str(decided["canary"])
    canary, replaced = find_canary(groups, f"{request.cluster} in {region}")
    return groups, canary, replaced


def abort_region(rt: Runtime, request: CanaryRequest, region: str) -> dict[str, object]:
    found = abort_choice(rt, request, region)
    if isinstance(found, str):
        rt.console.info(f"{found} in {region} was destroyed by this run's abort before")
        return {
            "cluster": request.cluster,
            "region": region,
            "server_group": found,
            "restored_server_groups": [],
            "destroyed": True,
        }
    if isinstance(found, ServerGroup):
        return aborted_already(rt, request, region, found)
    groups, canary, replaced = found
    sizes = capacities(groups)
    # A promote cut short may have taken some of them out already: they come back first.
    back = [
        g
        for g in replaced
        if disabled_by(g) == canary.name or (g.enabled and g.instances < sizes[g.name])
    ]
    fields: dict[str, object] = {
        "cluster": request.cluster,
        "region": region,
        "server_group": canary.name,
        "restored_server_groups": [g.name for g in back],
        "destroyed": request.destroy,
    }
    if rt.dry_run:
        for g in back:
            rt.plan(f"enable {g.name} in {region} at {sizes[g.name]} instances")
        rt.plan(f"{'destroy' if request.destroy else 'disable'} {canary.name} in {region}")
        return fields
    for g in back:
        size = sizes[g.name]
        if g.enabled:
            rt.provider.resize(g, size)
        else:
            rt.provider.enable(g, size, enabling(size))
        wait_healthy(rt, refetch(rt, g))
    rt.console.info(f"aborting {canary.name} in {region}")
    if request.destroy:
        take_out(rt, canary, disabling(canary, canary.instances), keep=False)
        note(rt, region, request.cluster, ("abort", request), canary=canary.name)
        rt.provider.destroy(canary)
        wait_gone(rt, canary)
    else:
        take_out(rt, canary, disabling(canary, canary.instances), keep=False)
    return fields


def promoted_already(
    rt: Runtime, request: CanaryRequest, region: str, canary: ServerGroup, taken: list[str]
) -> dict[str, object]:
    """The rerun of a promote that finished: its result again, nothing changed."""
    rt.console.info(
        f"{canary.name} in {region} was promoted by this run (run key {rt.run_key}): "
        "nothing left to do"
    )
    return {
        "cluster": request.cluster,
        "region": region,
        "server_group": canary.name,
        "instances": canary.instances,
        "disabled_server_groups": taken,
        **endpoint_fields(canary),
    }


def aborted_already(
    rt: Runtime, request: CanaryRequest, region: str, canary: ServerGroup
) -> dict[str, object]:
    """The rerun of an abort that took its canary out: it destroys it if asked (the first
    attempt may have died before it did)."""
    rt.console.info(
        f"{canary.name} in {region} was aborted by this run (run key {rt.run_key})"
        + (": destroying it" if request.destroy else ": nothing left to do")
    )
    if request.destroy and not rt.dry_run:
        note(rt, region, request.cluster, ("abort", request), canary=canary.name)
        rt.provider.destroy(canary)
        wait_gone(rt, canary)
    elif request.destroy:
        rt.plan(f"destroy {canary.name} in {region}")
    return {
        "cluster": request.cluster,
        "region": region,
        "server_group": canary.name,
        "restored_server_groups": [],
        "destroyed": request.destroy,
    }
