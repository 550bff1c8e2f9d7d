"""rollback: bring the previous server group of a cluster back at its remembered size,
wait until it is healthy, then disable the current one (what Spinnaker's users ran after a
manual judgment). By default the previous one is the server group just older than the
newest enabled one (disabled, or a canary's old group still serving beside it); `--to`
names it. Each region on its own. Refused (exit 3, nothing changed) when there is nothing
to roll back to, or when other groups serve too (they would go on serving)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from treadle.errors import InputError, Refused
from treadle.naming import parse_cluster, parse_server_group
from treadle.providers.base import LABEL_ROLLBACK_RUN, LABEL_ROLLED_BACK_FROM, ServerGroup
from treadle.stages.guard import guard_capacity
from treadle.stages.records import (
    capacities,
    disabled_by,
    disabled_in,
    disabling,
    enabling,
    in_service,
)
from treadle.stages.regions import each_region
from treadle.stages.runtime import Runtime
from treadle.stages.selection import age_key, cluster_groups
from treadle.stages.traffic import take_out
from treadle.stages.waits import endpoint_fields, refetch, wait_healthy


@dataclass(frozen=True)
class RollbackRequest:
    cluster: str
    regions: tuple[str, ...] = ()
    to: str | None = None

    def check(self, rt: Runtime) -> RollbackRequest:
        cluster = parse_cluster(self.cluster)
        if self.to is not None and parse_server_group(self.to).cluster != cluster:
            raise InputError(f"--to {self.to} is not a server group of {self.cluster}")
        regions = [
            rt.provider.check_region(r) for r in self.regions or [rt.provider.default_region]
        ]
        return replace(self, regions=tuple(dict.fromkeys(regions)))


def rollback(rt: Runtime, request: RollbackRequest) -> dict[str, object]:
    request = request.check(rt)
    # Every region's refusal before any region is changed.
    for region in request.regions:
        chosen(rt, request, region)
    return each_region(request.regions, lambda region: one_region(rt, request, region))


def choose(
    groups: list[ServerGroup], to: str | None, run_key: str | None = None
) -> tuple[ServerGroup, ServerGroup | None]:
    """(the group to bring back, the current one to take out); Refused when there is
    nothing to roll back to. `groups`: the cluster's, newest first. A rollback that was cut
    short is finished, not taken one version further: the group it brought back serves and
    names the one it was taking out, which is still in service (and a rerun of one that
    had finished, with its run key, finds its work done)."""
    resumed = unfinished(groups, run_key)
    if resumed is not None and to in (None, resumed[0].name):
        return resumed
    current = next((g for g in groups if g.serving), None)
    if to is not None:
        target = next((g for g in groups if g.name == to), None)
        if target is None:
            raise InputError(f"--to {to}: no such server group")
        if target is current:
            raise Refused(f"{to} is the server group serving now: nothing to roll back")
    elif current is None:
        raise Refused("nothing serves in this cluster: nothing to roll back from")
    else:
        # The one before it, which may still serve beside it (a canary's old group).
        target = next((g for g in groups if age_key(g) < age_key(current)), None)
        if target is None:
            raise Refused(f"nothing to roll back to: no server group older than {current.name}")
    beside = [g.name for g in groups if g.serving and g is not target and g is not current]
    if beside:
        # Rolling back takes one group out: the others would go on serving beside it.
        raise Refused(
            f"{', '.join(beside)} also serve beside {current.name if current else to}: "
            "end what runs them together first (promote or abort a canary, run a cut-short "
            "deploy again), or disable-cluster"
        )
    return target, current


def unfinished(
    groups: list[ServerGroup], run_key: str | None
) -> tuple[ServerGroup, ServerGroup | None] | None:
    """The rollback an earlier attempt started, as (brought back, taken out). The group
    it brought back names the one it takes out when it had to enable it; one that served
    already (a canary's old group) is named by the one taken out, as the group that
    disabled it: only a rollback has a group disabled by an older one."""
    named = {g.name: g for g in groups}
    for back in (g for g in groups if g.serving):
        previous = named.get(back.labels.get(LABEL_ROLLED_BACK_FROM) or "")
        if previous is None or age_key(previous) < age_key(back):
            previous = next(
                (g for g in groups if age_key(g) > age_key(back) and disabled_by(g) == back.name),
                None,
            )
        if previous is None:
            continue
        ours = bool(run_key) and (
            back.labels.get(LABEL_ROLLBACK_RUN) == run_key or disabled_in(previous, run_key)
        )
        if in_service(previous) or ours:
            return back, previous
    return None


def chosen(
    rt: Runtime, request: RollbackRequest, region: str
) -> tuple[list[ServerGroup], ServerGroup, ServerGroup | None, dict[str, int]]:
    """The region's groups, the one to bring back, the current one and the sizes; Refused
    when there is nothing to roll back to there."""
    rt.hold(region, request.cluster)
    groups = cluster_groups(rt, region, parse_cluster(request.cluster))
    where = f"{request.cluster} in {region}"
    try:
        target, current = choose(groups, request.to, rt.run_key)
    except Refused as refused:
        refused.args = (f"{where}: {refused}",)
        raise
    sizes = capacities(groups)
    if sizes[target.name] == 0:
        raise Refused(f"{where}: {target.name} remembers no size to come back at")
    return groups, target, current, sizes


def one_region(rt: Runtime, request: RollbackRequest, region: str) -> dict[str, object]:
    groups, target, current, sizes = chosen(rt, request, region)
    where = f"{request.cluster} in {region}"
    size = sizes[target.name]
    fields: dict[str, object] = {
        "cluster": request.cluster,
        "region": region,
        "server_group": target.name,
        "instances": size,
        "previous_server_group": current.name if current else None,
        "disabled_server_groups": [current.name] if current else [],
    }
    if rt.dry_run:
        rt.plan(f"enable {target.name} in {region} at {size} instances")
        if current:
            rt.plan(f"disable {current.name} in {region}")
        return fields
    # It serves again before the current one goes: never a moment with nothing serving.
    rt.console.info(f"rolling {where} back to {target.name} at {size} instances")
    if not target.enabled:
        back_from = {LABEL_ROLLED_BACK_FROM: current.name if current else None}
        rt.provider.enable(
            target, size, {**enabling(size), **back_from, LABEL_ROLLBACK_RUN: rt.run_key}
        )
    elif target.instances != size:
        rt.provider.resize(target, size)
    wait_healthy(rt, refetch(rt, target))
    if current is not None and in_service(now := refetch(rt, current)):
        restored = [refetch(rt, g) if g.name == target.name else g for g in groups]
        guard_capacity(restored, {now.name: 0}, f"disable {now.name}", force=False)
        take_out(rt, now, disabling(now, sizes[now.name], by=target.name))
    return {**fields, **endpoint_fields(refetch(rt, target))}
