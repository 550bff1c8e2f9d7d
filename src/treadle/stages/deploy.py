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

import hashlib
import json
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from treadle import __version__
from treadle.errors import (
    AlreadyExists,
    Cancelled,
    InputError,
    LeaseLost,
    Refused,
    ServerGroupGone,
    StageFailed,
    TreadleError,
)
from treadle.naming import Cluster, ServerGroupName, next_sequence
from treadle.providers.base import (
    ALIAS,
    ENDPOINTS,
    LABEL_CANARY,
    LABEL_CAPACITY,
    LABEL_CREATED_AT,
    LABEL_NETWORK,
    LABEL_PREVIOUS,
    LABEL_RUN_KEY,
    LABEL_SPEC,
    LABEL_SPEC_DIGEST,
    NewServerGroup,
    ServerGroup,
    server_group_labels,
)
from treadle.stages.records import (
    capacities,
    disabled_by,
    disabling,
    enabling,
    recorded,
    replacing,
)
from treadle.stages.runtime import Runtime
from treadle.stages.selection import cluster_groups
from treadle.stages.strategies import DEFAULT_STEPS, STRATEGIES, Step, strategy_steps, touched
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
# The largest spec recorded on a server group for `clone` (a label, as every provider
# keeps them: a few KiB is usual, a Marathon app's whole definition must fit in 1 MB).
SPEC_LABEL_MAX = 32 * 1024


@dataclass(frozen=True)
class Request:
    cluster: Cluster
    image: str
    regions: tuple[str, ...] = ()
    instances: int | None = None
    spec: Mapping[str, Any] | None = None
    strategy: str = "none"
    max_remaining: int | None = None
    steps: tuple[int, ...] = DEFAULT_STEPS
    rollback_on_failure: bool = False
    destroy_failed: bool = False
    # red-black: a pause between the new group healthy and the old ones disabled (for a
    # load balancer to notice the new one, or a person to look).
    delay_before_disable: float = 0.0
    # The network on which the cluster's server groups answer under its name (ALIAS).
    network: str | None = None
    # canary: the new group's size until promoted (a number, or a share of its size).
    canary_instances: int | None = None
    canary_percent: float | None = None
    # Checked against the new group once healthy, before the strategy's clean-up.
    verify: Check | None = None

    def check(self, rt: Runtime) -> Request:
        if self.strategy not in STRATEGIES:
            raise InputError(
                f"unknown --strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}"
            )
        if not self.image or any(c.isspace() for c in self.image):
            raise InputError(f"invalid --image {self.image!r}: expected repository[:tag]")
        if self.instances is not None and self.instances < 0:
            raise InputError(f"--instances must be 0 or more, not {self.instances}")
        if self.max_remaining is not None and self.max_remaining < 0:
            raise InputError(f"--max-remaining must be 0 or more, not {self.max_remaining}")
        if self.max_remaining is not None and self.strategy not in (
            "red-black",
            "rolling-red-black",
        ):
            raise InputError("--max-remaining goes with --strategy red-black or rolling-red-black")
        if self.strategy == "rolling-red-black":
            steps = list(self.steps)
            if not steps or steps != sorted(set(steps)) or steps[0] <= 0 or steps[-1] != 100:
                raise InputError(
                    f"invalid --steps {','.join(map(str, steps))}: give rising percentages "
                    "ending at 100, for example 25,50,100"
                )
        if not rt.wait and self.strategy != "none":
            raise InputError(
                f"--no-wait cannot apply --strategy {self.strategy}: it needs a "
                "healthy new server group first"
            )
        if self.delay_before_disable and self.strategy not in ("red-black", "rolling-red-black"):
            raise InputError(
                "--delay-before-disable goes with --strategy red-black or rolling-red-black"
            )
        canary = (self.canary_instances, self.canary_percent)
        if self.strategy == "canary" and (canary.count(None) != 1):
            raise InputError("--strategy canary takes --canary-instances N or --canary-percent P")
        if self.strategy != "canary" and canary != (None, None):
            raise InputError("--canary-instances and --canary-percent go with --strategy canary")
        if self.canary_instances is not None and self.canary_instances < 1:
            raise InputError(f"--canary-instances must be 1 or more, not {self.canary_instances}")
        if self.canary_percent is not None and not 0 < self.canary_percent < 100:
            raise InputError(
                f"--canary-percent must be between 0 and 100, not {self.canary_percent:g}"
            )
        if self.network and ALIAS not in rt.provider.capabilities:
            raise InputError(
                f"--network: the {rt.provider.name} provider has no network alias for a "
                "cluster (Marathon routes by labels: see the README's Traffic section)"
            )
        if self.verify and not self.verify.urls and ENDPOINTS not in rt.provider.capabilities:
            raise InputError(
                f"--verify: the {rt.provider.name} provider publishes no endpoint to check: "
                "give url in the verify file (the address your load balancer serves)"
            )
        if self.destroy_failed and not self.rollback_on_failure:
            raise InputError("--destroy-failed goes with --rollback-on-failure")
        regions = [
            rt.provider.check_region(r) for r in self.regions or [rt.provider.default_region]
        ]
        # A spec the provider would refuse is refused before anything is asked of it.
        rt.provider.definition(
            NewServerGroup(
                ServerGroupName(self.cluster, 0), regions[0], self.image, 1, self.spec, {}
            )
        )
        return replace(self, regions=tuple(dict.fromkeys(regions)))

    @property
    def digest(self) -> str:
        """What the new group is made from: a rerun carries on only with the same."""
        made_of = json.dumps({"image": self.image, "spec": self.spec}, sort_keys=True, default=str)
        return hashlib.sha256(made_of.encode()).hexdigest()[:16]


@dataclass
class RegionPlan:
    region: str
    name: ServerGroupName
    # The size the new group serves at (recorded on it as its capacity).
    instances: int
    definition: dict[str, Any]
    previous: str | None
    # The cluster's other groups, all older than the new one, newest first.
    others: list[ServerGroup]
    # Every group's size when whole, as the cluster was before this deploy began.
    sizes: dict[str, int] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    # The group an earlier attempt of this run made, carried on.
    adopted: ServerGroup | None = None
    # Older groups this deploy changes, and whether each served before it began.
    before: dict[str, bool] = field(default_factory=dict)
    # The new group's name once this run began to make it (or carries it on).
    making: str | None = None
    # The labels it is made with.
    labels: dict[str, str] = field(default_factory=dict)


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
                rt.console.raw(json.dumps(plan.definition, indent=2) + "\n")
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
        except TreadleError as e:
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


def combine(per_region: list[dict[str, object]]) -> dict[str, object]:
    """One region's fields at the top level; with several, the first region's there too
    and every region's under `regions`."""
    if len(per_region) == 1:
        return per_region[0]
    return {**per_region[0], "regions": per_region}


def plan_region(rt: Runtime, request: Request, region: str) -> RegionPlan:
    existing = cluster_groups(rt, region, request.cluster)
    sizes = capacities(existing)
    newest = existing[0] if existing else None
    adopted = newest if newest is not None and is_earlier_attempt(rt, newest, request) else None
    others = existing[1:] if adopted is not None else existing
    if adopted is not None:
        rt.console.info(
            f"{adopted.name} in {region} was made by an earlier attempt of this run "
            f"(run key {rt.run_key}): carrying on with it"
        )
        previous = adopted.labels.get(LABEL_PREVIOUS) or None
        name = adopted.parsed
    else:
        previous = next((g.name for g in others if g.enabled), None)
        name = ServerGroupName(request.cluster, next_sequence(g.sequence for g in existing))
    instances = request.instances
    if instances is None:
        if adopted is not None:
            instances = recorded(adopted, LABEL_CAPACITY) or sizes[adopted.name]
        else:
            instances = sizes[previous] if previous is not None else 1
    plan = RegionPlan(region, name, instances, {}, previous, others, sizes=sizes, adopted=adopted)
    plan.making = adopted.name if adopted is not None else None
    grown = adopted.instances if adopted is not None else 0
    plan.steps = strategy_steps(
        request.strategy,
        name.name,
        instances,
        others,
        sizes,
        grown=grown,
        steps=request.steps,
        max_remaining=request.max_remaining,
    )
    plan.before = {
        g.name: g.serving or disabled_by(g) == name.name
        for g in touched(plan.steps, name.name, others)
    }
    plan.definition = definition(rt, request, plan)
    guard_clean_up(plan)
    return plan


def is_earlier_attempt(rt: Runtime, group: ServerGroup, request: Request) -> bool:
    """Made by this run (run key), from the same image and spec, and not rolled back (a
    rerun after a rollback deploys afresh)."""
    return (
        bool(rt.run_key)
        and group.labels.get(LABEL_RUN_KEY) == rt.run_key
        and group.image == request.image
        and group.labels.get(LABEL_SPEC_DIGEST) == request.digest
        and group.enabled
    )


def definition(rt: Runtime, request: Request, plan: RegionPlan) -> dict[str, Any]:
    created_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    rolling = request.strategy == "rolling-red-black"
    size = 0 if rolling else canary_size(request, plan.instances)
    labels = {
        **rt.provenance,
        **server_group_labels(plan.name, __version__, created_at),
        LABEL_SPEC_DIGEST: request.digest,
        LABEL_CAPACITY: str(plan.instances),
    }
    if rt.run_key:
        labels[LABEL_RUN_KEY] = rt.run_key
    if plan.previous:
        labels[LABEL_PREVIOUS] = plan.previous
    if request.network:
        labels[LABEL_NETWORK] = request.network
    spec = json.dumps(request.spec or {}, separators=(",", ":"), sort_keys=True, default=str)
    if len(spec) <= SPEC_LABEL_MAX:
        labels[LABEL_SPEC] = spec
    serving_before = {name: plan.sizes[name] for name, served in plan.before.items() if served}
    if request.strategy == "canary":
        # Replaced when it is promoted: the groups serving beside it now.
        serving_before = {g.name: plan.sizes[g.name] for g in plan.others if g.serving}
        labels[LABEL_CANARY] = str(plan.instances)
    labels.update({k: v for k, v in replacing(serving_before).items() if v is not None})
    plan.labels = labels
    return rt.provider.definition(
        NewServerGroup(
            name=plan.name,
            region=plan.region,
            image=request.image,
            instances=size,
            spec=request.spec,
            labels=labels,
            network=request.network,
            siblings=tuple(plan.others),
        )
    )


def guard_clean_up(plan: RegionPlan) -> None:
    """The traffic guard, for the strategy's own clean-up: a new server group of size 0
    cannot take over from the ones serving now."""
    removed = {s.group for s in plan.steps if s.verb in ("disable", "destroy")}
    serving = [g.name for g in plan.others if g.serving and g.name in removed]
    if plan.instances == 0 and serving:
        raise Refused(
            f"refusing to deploy {plan.name} with 0 instances in {plan.region}: the strategy "
            f"would take {', '.join(serving)} out of service and leave nothing serving"
        )


def canary_size(request: Request, target: int) -> int:
    """What the new group runs at first: its size, or a canary's."""
    if request.canary_instances is not None:
        return min(request.canary_instances, target) if target else request.canary_instances
    if request.canary_percent is not None:
        return max(1, math.ceil(target * request.canary_percent / 100))
    return target


def plan_fields(request: Request, plan: RegionPlan) -> dict[str, object]:
    canary = (
        {"canary_instances": canary_size(request, plan.instances)}
        if request.strategy == "canary"
        else {}
    )
    return {
        **canary,
        "server_group": plan.name.name,
        "cluster": request.cluster.name,
        "region": plan.region,
        "image": request.image,
        "instances": plan.instances,
        "previous_server_group": plan.previous,
        "strategy": request.strategy,
        "disabled_server_groups": sorted(
            {g.name for g in plan.others if disabled_by(g) == plan.name.name}
            | {s.group for s in plan.steps if s.verb == "disable"}
        ),
        "destroyed_server_groups": [s.group for s in plan.steps if s.verb == "destroy"],
    }


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
            rolling = request.strategy == "rolling-red-black"
            created = carry_on(rt, plan, None if rolling else canary_size(request, plan.instances))
        else:
            created = create(rt, request, plan)
        fields["server_group"] = created.name
        rt.note(**fields)
        wait_healthy(rt, created)
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
    except TreadleError as e:
        # The group this run made or carries on, once it got as far as asking for it (a
        # create may be carried out and still fail: a rollback looks for it by name).
        fields["server_group"] = plan.making
        if plan.making is None or not request.rollback_on_failure or isinstance(e, LeaseLost):
            e.fields = {**fields, **e.fields}
            raise
        kind = Cancelled if isinstance(e, Cancelled) else StageFailed
        try:
            with shielded():
                rolled, whole = roll_back(rt, request, plan, plan.making)
        except TreadleError as failure:
            raise kind(
                f"{e}; the rollback did not finish: {failure}",
                fields={**fields, "rolled_back": False},
            ) from failure
        raise kind(f"{e}; rolled back: {rolled}", fields={**fields, "rolled_back": whole}) from e
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
        wait_healthy(rt, group)
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
            wait_healthy(rt, group)
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
