"""Cluster-wide stages, as Spinnaker's (orca's AbstractClusterWideClouddriverTask):
each region on its own, keeping the N newest (or largest) server groups and acting on the
others.

    disable-cluster      disable the enabled ones beyond the N kept enabled
    scale-down-cluster   scale the ones beyond the N kept at full size to 0, keeping their
                         remembered size; enabled ones only with --allow-scale-down-active
    shrink-cluster       destroy the ones beyond the N kept; enabled ones only with
                         --allow-delete-active (which disables them first)

The server groups a pipeline's deploy just made (and any newer) are never touched: pass
its result (`--context deploy=deploy.json`) or name them with --exclude. A cluster with no
server group in a region fails the stage, unless --continue-if-cluster-not-found, or
shrink-cluster is asked to keep none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from treadle.errors import InputError, NotFound
from treadle.naming import parse_cluster, parse_server_group
from treadle.providers.base import ServerGroup
from treadle.stages.guard import guard_capacity
from treadle.stages.journal import note, recall
from treadle.stages.records import capacities, disabling, in_service
from treadle.stages.regions import each_region
from treadle.stages.runtime import Runtime
from treadle.stages.selection import age_key, cluster_groups
from treadle.stages.traffic import take_out
from treadle.stages.waits import refetch, wait_gone, wait_healthy

ACTIONS = ("disable", "scale-down", "shrink")
# What a run chose, kept in the journal for its retry: kept, left alone, acted on.
CHOSEN = ("kept", "skipped", "changed_server_groups")


@dataclass(frozen=True)
class ClusterRequest:
    action: str  # disable | scale-down | shrink
    cluster: str
    regions: tuple[str, ...] = ()
    # How many to keep: enabled, at full size, or at all.
    keep: int = 1
    prefer_larger: bool = False
    # scale-down: scale enabled groups too; shrink: destroy enabled groups too.
    allow_active: bool = False
    # Never touched: a pipeline's freshly deployed groups (and, with them, any newer).
    exclude: tuple[str, ...] = ()
    continue_if_not_found: bool = False
    force: bool = False

    def check(self, rt: Runtime) -> ClusterRequest:
        assert self.action in ACTIONS, self.action
        parse_cluster(self.cluster)
        if self.keep < 0:
            raise InputError(
                f"the number of server groups to keep must be 0 or more, not {self.keep}"
            )
        for name in self.exclude:
            parse_server_group(name)
        regions = [
            rt.provider.check_region(r) for r in self.regions or [rt.provider.default_region]
        ]
        return replace(self, regions=tuple(dict.fromkeys(regions)))


def cluster_stage(rt: Runtime, request: ClusterRequest) -> dict[str, object]:
    request = request.check(rt)
    # Every region decided (and refused, if it is) before any region is changed.
    decided = {region: decide(rt, request, region) for region in request.regions}
    return each_region(request.regions, lambda region: carry_out(rt, request, decided[region]))


@dataclass(frozen=True)
class Decision:
    fields: dict[str, object]
    targets: list[ServerGroup]
    sizes: dict[str, int]
    # Kept in the journal before acting: a fresh decision (not a retry's).
    fresh: bool = False


def decide(rt: Runtime, request: ClusterRequest, region: str) -> Decision:
    rt.hold(region, request.cluster)
    groups = cluster_groups(rt, region, parse_cluster(request.cluster))
    fields: dict[str, object] = {"cluster": request.cluster, "region": region}
    if not groups:
        if request.continue_if_not_found or (request.action == "shrink" and request.keep == 0):
            rt.console.info(f"{request.cluster} has no server group in {region}: nothing to do")
            return Decision({**fields, "kept": [], "changed_server_groups": []}, [], {})
        raise NotFound(
            f"{request.cluster} has no server group in {region} "
            "(--continue-if-cluster-not-found to go on)"
        )
    sizes = capacities(groups)
    candidates = untouchable(groups, request.exclude)
    decided = recall(rt, region, request.cluster, request, **dict.fromkeys(CHOSEN, list))
    if decided is not None and any(
        g in candidates and not any(g.name in decided[k] for k in CHOSEN) for g in groups
    ):
        decided = None  # a group came since the first attempt chose: decided anew
    if decided is not None:
        # A retry: the groups its first attempt chose (a ranking by size may differ now
        # that it changed some of them), those left of them.
        kept, skipped, targets = ([g for g in groups if g.name in decided[k]] for k in CHOSEN)
    else:
        kept, targets = choose(request, groups, candidates, sizes)
        skipped = [
            g
            for g in targets
            if g.enabled and request.action != "disable" and not request.allow_active
        ]
        targets = [g for g in targets if g not in skipped]
    verb = ACTS[request.action][1]
    after = {g.name: 0 for g in targets}
    guard_capacity(
        groups,
        after,
        f"{verb} {', '.join(after) or 'nothing'}",
        force=request.force,
        ratio=rt.min_capacity_ratio,
    )
    fields.update(
        kept=[g.name for g in kept],
        skipped=[g.name for g in skipped],
        changed_server_groups=[g.name for g in targets],
    )
    if decided is not None:
        # What the run chose, those its first attempt changed already too.
        fields.update({k: list(decided[k]) for k in CHOSEN})
    for g in skipped:
        flag = (
            "--allow-scale-down-active"
            if request.action == "scale-down"
            else "--allow-delete-active"
        )
        rt.console.info(f"leaving {g.name} alone: it is enabled ({flag})")
    return Decision(fields, targets, sizes, fresh=decided is None)


def carry_out(rt: Runtime, request: ClusterRequest, decision: Decision) -> dict[str, object]:
    act, verb = ACTS[request.action]
    region = str(decision.fields["region"])
    if rt.dry_run:
        for g in decision.targets:
            rt.plan(f"{verb} {g.name} in {region}")
        return decision.fields
    if decision.fresh and decision.targets:
        # Kept only once every region is decided, just before acting.
        note(rt, region, request.cluster, request, **{k: decision.fields[k] for k in CHOSEN})
    for g in decision.targets:
        rt.console.info(f"{verb} {g.name} in {region} ({request.action}-cluster)")
        act(rt, refetch(rt, g), decision.sizes[g.name])
    return decision.fields


def untouchable(groups: list[ServerGroup], exclude: tuple[str, ...]) -> list[ServerGroup]:
    """The groups a cluster-wide stage may act on: none of those excluded, nor any newer
    than the oldest of them."""
    excluded = [g for g in groups if g.name in exclude]
    if not excluded:
        return groups
    oldest = min(excluded, key=age_key)
    return [g for g in groups if age_key(g) < age_key(oldest)]


def choose(
    request: ClusterRequest,
    groups: list[ServerGroup],
    candidates: list[ServerGroup],
    sizes: dict[str, int],
) -> tuple[list[ServerGroup], list[ServerGroup]]:
    """(kept, the ones to act on). The kept are the N newest, or largest (--prefer-larger,
    ties: newest), among the groups the action concerns; the excluded count as kept."""
    if request.action == "disable":
        pool = [g for g in groups if g.enabled]
    elif request.action == "scale-down":
        # A disabled group running nothing has nothing to scale down.
        pool = [g for g in groups if g.enabled or g.instances]
    else:
        pool = list(groups)
    ranked = sorted(
        pool,
        key=lambda g: (sizes[g.name] if request.prefer_larger else 0, age_key(g)),
        reverse=True,
    )
    protected = [g for g in pool if g not in candidates]
    kept = (
        protected
        + [g for g in ranked if g not in protected][: max(0, request.keep - len(protected))]
    )
    targets = [g for g in ranked if g not in kept and g in candidates]
    if request.action == "disable":
        # Marked disabled by a disable that was cut short, still running: finish it.
        targets += [g for g in candidates if not g.enabled and in_service(g)]
    return kept, targets


def disable_one(rt: Runtime, group: ServerGroup, size: int) -> None:
    take_out(rt, group, disabling(group, size))


def scale_down_one(rt: Runtime, group: ServerGroup, size: int) -> None:
    """To 0, remembering its size: a disabled one (its remembered size stays), or an enabled
    one that becomes disabled at 0 so that `enable` brings it back whole."""
    if group.enabled:
        take_out(rt, group, disabling(group, size), keep=False)
    else:
        rt.provider.resize(group, 0)
        wait_healthy(rt, group)


def shrink_one(rt: Runtime, group: ServerGroup, size: int) -> None:
    if group.serving:
        take_out(rt, group, disabling(group, size), keep=False)
    rt.provider.destroy(group)
    wait_gone(rt, group)


ACTS: dict[str, tuple[Callable[[Runtime, ServerGroup, int], None], str]] = {
    "disable": (disable_one, "disable"),
    "scale-down": (scale_down_one, "scale down"),
    "shrink": (shrink_one, "destroy"),
}
