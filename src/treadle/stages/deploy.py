"""deploy: create the next server group of a cluster, wait until it is healthy, then apply
a strategy to the older ones.

Under the cluster lease of each region (treadle.stages.lease), it reads the cluster,
decides the new group's name and size from records (treadle.stages.records), and plans
the strategy (treadle.stages.strategies) before anything changes. A dry run prints the
plan; a real run carries it out step by step, waiting after each. A rerun of the same
run (same run key, image and spec) carries on with the group its first attempt made,
when that is still the cluster's newest; a name someone else took moves on to the next
sequence. A rollback restores every older group the deploy touched to what its records
say it was, including the step in progress, then takes the new group out.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

from treadle.bodies import hidden
from treadle.errors import (
    AlreadyExists,
    Cancelled,
    LeaseLost,
    ServerGroupGone,
    StageFailed,
    TreadleError,
    Unexpected,
)
from treadle.naming import ServerGroupName, next_sequence
from treadle.providers.base import (
    LABEL_CREATED_AT,
    LABEL_RUN_KEY,
    LABEL_SPEC_DIGEST,
    ServerGroup,
)
from treadle.stages.deploy_plan import (
    RegionPlan,
    Request,
    canary_size,
    definition,
    plan_fields,
    plan_region,
)
from treadle.stages.records import (
    disabled_by,
    disabling,
    enabling,
)
from treadle.stages.regions import combine
from treadle.stages.runtime import Runtime
from treadle.stages.selection import cluster_groups
from treadle.stages.strategies import Step
from treadle.stages.traffic import take_out
from treadle.stages.waits import endpoint_fields, refetch, wait_gone, wait_healthy
from treadle.waiting import pause, shielded

if TYPE_CHECKING:
    from treadle.stages.verify import Check

# Time a rollback may take, from its start, whether or not --timeout has passed (a
# request in it that gets no answer within 10 s ends it: treadle.waiting).
ROLLBACK_SECONDS = 60.0
# Names taken by something else in a row before giving up.
CREATE_ATTEMPTS = 5


def deploy(rt: Runtime, request: Request) -> dict[str, object]:
    request = request.check(rt)
    # Leases in one order, so that two multi-region deploys cannot each wait for the other.
    for region in sorted(request.regions):
        rt.hold(region, request.cluster.name)
    # Every region is planned (reads only) before any is changed, so that bad input in one
    # region leaves all of them untouched.
    plans = [plan_region(rt, request, region) for region in request.regions]
    if rt.dry_run:
        for plan in plans:
            if plan.adopted is not None:
                rt.plan(f"carry on with {plan.name} in {plan.region} (an earlier attempt's)")
            else:
                rt.console.raw(json.dumps(hidden(plan.definition), indent=2) + "\n")
                rt.plan(f"create {plan.name} in {plan.region} with {plan.instances} instances")
            for step in plan.steps:
                rt.plan(f"{step.describe()} in {plan.region}")
        return combine([plan_fields(request, plan) for plan in plans])
    if len(plans) == 1:
        return deploy_region(rt, request, plans[0])
    return combine(concurrently(rt, request, plans))


def concurrently(rt: Runtime, request: Request, plans: list[RegionPlan]) -> list[dict[str, object]]:
    """Each region in a thread of its own. Daemon threads: a stage that must end at once
    (a cancel) never waits for a region stuck in a request."""
    outcomes: list[dict[str, object]] = [{} for _ in plans]
    failures: list[TreadleError | None] = [None] * len(plans)

    def one(i: int) -> None:
        try:
            outcomes[i] = deploy_region(rt.for_region(plans[i].region), request, plans[i])
        except Exception as caught:  # noqa: BLE001 (a bug in one region: the others carry on)
            e = caught if isinstance(caught, TreadleError) else Unexpected.of(caught)
            outcomes[i] = {**e.fields, "status": "failed", "error": str(e)}
            failures[i] = e

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(len(plans))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = combine(outcomes)
    failed = [e for e in failures if e is not None]
    if failed:
        error = failed[0]
        error.args = ("; ".join(map(str, failed)),)
        error.fields = result
        raise error
    return outcomes


def deploy_region(rt: Runtime, request: Request, plan: RegionPlan) -> dict[str, object]:
    fields = plan_fields(request, plan)
    # What is true so far: only what this run has done.
    disabled = sorted(g.name for g in plan.others if disabled_by(g) == plan.name.name)
    destroyed: list[str] = []
    fields["disabled_server_groups"], fields["destroyed_server_groups"] = disabled, destroyed
    # Named once this run has made (or carried on with) it: never another run's.
    fields["server_group"] = None
    rt.note(**fields)
    try:
        if plan.adopted is not None:
            size: int | None = canary_size(request, plan.instances)
            if request.strategy == "canary":
                # Promoted since (a CI's rerun of every job): no canary to shrink back.
                size = max(canary_size(request, plan.instances), plan.adopted.instances)
            elif request.strategy == "rolling-red-black":
                size = None
            created = carry_on(rt, plan, size)
        else:
            created = create(rt, request, plan)
        fields["server_group"] = created.name
        rt.note(**fields)
        # Healthy at the size this deploy gave it: shrunk by another hand meanwhile, it is
        # not the capacity the strategy may take the old groups out for.
        wait_healthy(rt, created, size=created.instances)
        if request.verify is not None:
            try:
                fields["verify"] = check_new(rt, request.verify, refetch(rt, created))
            except TreadleError as e:
                # What the check measured, under its own name in the deploy's result.
                if e.fields:
                    fields["verify"], e.fields = e.fields, {}
                raise
        delayed = False
        for step in plan.steps:
            if step.verb == "disable" and request.delay_before_disable and not delayed:
                delayed = True
                rt.console.info(
                    f"waiting {request.delay_before_disable:g}s before disabling "
                    "(--delay-before-disable)"
                )
                pause(min(request.delay_before_disable, rt.deadline.remaining()))
            group = refetch(rt, created if step.group == created.name else other(plan, step.group))
            rt.console.info(f"{step.describe()} ({request.strategy})")
            carry_out(rt, step, group, plan)
            if step.verb == "disable" and step.group not in disabled:
                disabled.append(step.group)
            elif step.verb == "destroy":
                destroyed.append(step.group)
        fields.update(endpoint_fields(refetch(rt, created)))
    except Exception as caught:
        # Whatever failed, a bug too: the rollback asked for runs.
        error = caught if isinstance(caught, TreadleError) else Unexpected.of(caught)
        # The group this run made or carries on, once it got as far as asking for it (a
        # create may be carried out and still fail: a rollback looks for it by name).
        fields["server_group"] = plan.making
        if plan.making is None or not request.rollback_on_failure or isinstance(error, LeaseLost):
            error.fields = {**fields, **error.fields}
            if error is caught:
                raise
            raise error from caught
        kind = Cancelled if isinstance(error, Cancelled) else StageFailed
        try:
            with shielded():
                rolled, whole = roll_back(rt, request, plan, plan.making)
        except TreadleError as failure:
            raise kind(
                f"{error}; the rollback did not finish: {failure}",
                fields={**fields, "rolled_back": False},
            ) from failure
        raise kind(
            f"{error}; rolled back: {rolled}", fields={**fields, "rolled_back": whole}
        ) from error
    return fields


def check_new(rt: Runtime, check: Check, group: ServerGroup) -> dict[str, object]:
    """deploy --verify: the check of the new group, healthy now; StageFailed (which a
    rollback on failure answers) when it fails or has nothing to reach."""
    check = check.against(group.endpoints)
    if not check.urls:
        raise StageFailed(
            f"--verify: {group.name} publishes no endpoint to check (no published port): "
            "give url in the verify file"
        )
    from treadle.stages.verify import verify

    rt.console.info(f"verifying {group.name}")
    return verify(rt, check)


def other(plan: RegionPlan, name: str) -> ServerGroup:
    return next(g for g in plan.others if g.name == name)


def create(rt: Runtime, request: Request, plan: RegionPlan) -> ServerGroup:
    """Make the new group; a name that something else took (another run without a lease,
    or anything not of this run) moves on to the next sequence, never adopted."""
    taken: set[int] = set()
    for _ in range(CREATE_ATTEMPTS):
        rt.console.info(f"creating {plan.name} in {plan.region} from {request.image}")
        # Under the cluster lease a group of this name can only be this run's: if the
        # create is cut short (a cancel, a cluster that stops answering), the result names
        # it, for a later step to clean up.
        plan.making = plan.name.name
        rt.note(server_group=plan.making)
        try:
            return rt.provider.create(plan.region, plan.definition)
        except AlreadyExists:
            found = rt.provider.server_group(plan.region, plan.name.name)
            if found is not None and ours(found, plan):
                # This run's own create, carried out though its answer was lost and a
                # retry was told the name is taken.
                return found
            taken.add(plan.name.sequence)
            existing = cluster_groups(rt, plan.region, request.cluster)
            used = taken | {g.sequence for g in existing}
            rt.console.info(f"{plan.name} exists already and is not this run's: moving on")
            plan.name = ServerGroupName(request.cluster, next_sequence(used))
            plan.definition = definition(rt, request, plan)
    plan.making = None
    rt.note(server_group=None)
    raise StageFailed(
        f"{CREATE_ATTEMPTS} names of {request.cluster} in {plan.region} in a row were taken "
        "while treadle created the next server group"
    )


def ours(group: ServerGroup, plan: RegionPlan) -> bool:
    """Made by this very attempt: the moment it was made at, its run and its spec."""
    return all(
        group.labels.get(label) == plan.labels.get(label)
        for label in (LABEL_CREATED_AT, LABEL_RUN_KEY, LABEL_SPEC_DIGEST)
    )


def carry_on(rt: Runtime, plan: RegionPlan, size: int | None) -> ServerGroup:
    """The earlier attempt's group, brought to where that attempt meant it to be: `size`
    (None: the step a rolling deploy reached), with every instance started."""
    assert plan.adopted is not None
    group = refetch(rt, plan.adopted)
    rt.provider.resize(group, group.instances if size is None else size)
    return refetch(rt, group)


def carry_out(rt: Runtime, step: Step, group: ServerGroup, plan: RegionPlan) -> None:
    if step.verb == "resize":
        # An older group's full size is on record on the new one (LABEL_REPLACES).
        rt.provider.resize(group, step.instances)
        wait_healthy(rt, group, size=step.instances)
    elif step.verb == "disable":
        size = plan.sizes.get(group.name, group.instances)
        take_out(rt, group, disabling(group, size, by=plan.name.name))
    elif step.verb == "destroy":
        rt.provider.destroy(group)
        wait_gone(rt, group)


def roll_back(rt: Runtime, request: Request, plan: RegionPlan, new: str) -> tuple[str, bool]:
    """Restore every older group this deploy touched that served before it to its
    recorded size (the step in progress included), wait until they are healthy, then take
    the new group out, unless nothing else would serve (a group destroyed before the
    failure stays destroyed). Returns what it did, for the error message, and whether it
    undid everything."""
    done: list[str] = []
    whole = True
    with rt.deadline.grace(ROLLBACK_SECONDS):
        restored = []
        for name, served in plan.before.items():
            if not served:
                continue
            try:
                group = refetch(rt, other(plan, name))
            except ServerGroupGone:
                done.append(f"{name} stays destroyed")
                whole = False
                continue
            size = plan.sizes[name]
            if not group.enabled:
                rt.provider.enable(group, size, enabling(size))
            elif group.instances != size:
                rt.provider.resize(group, size)
            else:
                continue
            restored.append(group)
            done.append(f"restored {name} to {size}")
        for group in restored:
            # As it is now (enabled): an enabled group joins its cluster's name.
            wait_healthy(rt, refetch(rt, group))
        made = rt.provider.server_group(plan.region, new)
        others_serve = any(
            g.serving for g in cluster_groups(rt, plan.region, plan.name.cluster) if g.name != new
        )
        if made is None:
            done.append(f"{new} was not made")
        elif made.serving and not others_serve and plan.before:
            done.append(f"kept {new}: nothing else would serve")
            whole = False
        elif request.destroy_failed:
            rt.provider.destroy(made)
            wait_gone(rt, made)
            done.append(f"destroyed {new}")
        else:
            if made.enabled or made.instances:
                take_out(rt, made, disabling(made, plan.instances), keep=False)
            done.append(f"disabled {new}")
    rt.console.info(f"rolled back: {', '.join(done)}")
    return ", ".join(done), whole
