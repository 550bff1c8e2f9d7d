"""What a deploy will do, decided before anything changes: the request checked, and for
each region the new group's name, size and definition, the group an earlier attempt
made (carried on with), and the strategy's steps (treadle.stages.deploy carries them
out)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from treadle import __version__
from treadle.bodies import secret_values
from treadle.errors import (
    InputError,
    Refused,
)
from treadle.limits import check_instances
from treadle.naming import Cluster, ServerGroupName, next_sequence
from treadle.providers.base import (
    ALIAS,
    ENDPOINTS,
    LABEL_CANARY,
    LABEL_CAPACITY,
    LABEL_CLONED_FROM,
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
    canary_in_flight,
    capacities,
    disabled_by,
    recorded,
    replacing,
)
from treadle.stages.runtime import Runtime
from treadle.stages.selection import cluster_groups
from treadle.stages.strategies import DEFAULT_STEPS, STRATEGIES, Step, strategy_steps, touched

if TYPE_CHECKING:
    from treadle.stages.verify import Check

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
    # clone: the server group it is made from (recorded on the new one).
    cloned_from: str | None = None

    def check(self, rt: Runtime) -> Request:
        if self.strategy not in STRATEGIES:
            raise InputError(
                f"unknown --strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}"
            )
        if not self.image or any(c.isspace() for c in self.image):
            raise InputError(f"invalid --image {self.image!r}: expected repository[:tag]")
        if self.instances is not None and self.instances < 0:
            raise InputError(f"--instances must be 0 or more, not {self.instances}")
        check_instances(self.instances, "--instances")
        check_instances(self.canary_instances, "--canary-instances")
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


def plan_region(rt: Runtime, request: Request, region: str) -> RegionPlan:
    existing = cluster_groups(rt, region, request.cluster)
    sizes = capacities(existing)
    newest = existing[0] if existing else None
    adopted = newest if newest is not None and is_earlier_attempt(rt, newest, request) else None
    others = existing[1:] if adopted is not None else existing
    live = canary_in_flight(existing) if request.strategy == "canary" else None
    if adopted is None and live is not None:
        # Its abort would grow the canary before it to full size, and its promote take
        # out an untested one: one canary at a time.
        raise Refused(
            f"{live[0].name} in {region} is a canary in flight: promote or abort it "
            "before deploying another canary"
        )
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
    if request.cloned_from:
        labels[LABEL_CLONED_FROM] = request.cloned_from
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
    made = rt.provider.definition(
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
    # Never printed, whatever quotes them back (a server's error, a job's log); but a
    # value within a name treadle writes itself stays readable there.
    ours = (plan.name.name, plan.region)
    for value in secret_values(made):
        if not any(value in name for name in ours):
            rt.console.mask(value)
    return made


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
