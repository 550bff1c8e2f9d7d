"""deploy: create the next server group of a cluster, wait until it is healthy, then apply
a strategy to the older ones.

A strategy is a plan of single steps (resize, disable, destroy) computed from the
cluster as it is before anything changes. A dry run prints the plan; a real run carries
it out step by step, waiting after each; a rollback undoes the steps it has done.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from treadle import __version__
from treadle.errors import Cancelled, InputError, Refused, StageFailed, TreadleError
from treadle.naming import Cluster, ServerGroupName, next_sequence
from treadle.providers.base import (
    LABEL_RUN_KEY,
    NewServerGroup,
    ServerGroup,
    server_group_labels,
)
from treadle.stages.common import (
    Runtime,
    age_key,
    cluster_groups,
    endpoint_fields,
    refetch,
    wait_gone,
    wait_healthy,
)
from treadle.waiting import shielded

STRATEGIES = ("none", "highlander", "red-black", "rolling-red-black")
DEFAULT_STEPS = (25, 50, 100)
# Time a rollback may take after the stage's own deadline has passed.
ROLLBACK_GRACE = 60.0


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
    # Names this deploy across CI retries: a rerun with the same key and image adopts the
    # server group the first attempt created instead of creating another.
    run_key: str | None = None

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
        if self.destroy_failed and not self.rollback_on_failure:
            raise InputError("--destroy-failed goes with --rollback-on-failure")
        regions = [
            rt.provider.check_region(r) for r in self.regions or [rt.provider.default_region]
        ]
        return replace(self, regions=tuple(dict.fromkeys(regions)))


@dataclass(frozen=True)
class Step:
    verb: str  # resize | disable | destroy
    group: str
    # resize: the size to reach; disable: the size to remember.
    instances: int = 0

    def describe(self) -> str:
        if self.verb == "resize":
            return f"resize {self.group} to {self.instances}"
        return f"{self.verb} {self.group}"


@dataclass
class RegionPlan:
    region: str
    name: ServerGroupName
    instances: int
    definition: dict[str, Any]
    previous: ServerGroup | None
    others: list[ServerGroup]
    steps: list[Step] = field(default_factory=list)
    # The server group an earlier attempt with the same run key created, carried on.
    adopted: ServerGroup | None = None


def run(rt: Runtime, request: Request) -> dict[str, object]:
    request = request.check(rt)
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
    with ThreadPoolExecutor(max_workers=len(plans)) as pool:
        futures = [
            pool.submit(deploy_region, rt.for_region(plan.region), request, plan) for plan in plans
        ]
    outcomes: list[dict[str, object]] = []
    failures: list[TreadleError] = []
    for future in futures:
        try:
            outcomes.append(future.result())
        except TreadleError as e:
            outcomes.append({**e.fields, "status": "failed", "error": str(e)})
            failures.append(e)
    result = combine(outcomes)
    if failures:
        raise type(failures[0])("; ".join(map(str, failures)), fields=result)
    return result


def combine(per_region: list[dict[str, object]]) -> dict[str, object]:
    """One region's fields at the top level; with several, the first region's there too
    and every region's under `regions`."""
    if len(per_region) == 1:
        return per_region[0]
    return {**per_region[0], "regions": per_region}


def plan_region(rt: Runtime, request: Request, region: str) -> RegionPlan:
    existing = cluster_groups(rt, region, request.cluster)
    adopted = next((g for g in existing if is_earlier_attempt(g, request)), None)
    if adopted is not None:
        rt.console.info(
            f"{adopted.name} in {region} was created by an earlier attempt of this run "
            f"(run key {request.run_key}): carrying on with it"
        )
        existing = [g for g in existing if g is not adopted]
    name = ServerGroupName(request.cluster, next_sequence(g.sequence for g in existing))
    if adopted is not None:
        name = adopted.parsed
    previous = next((g for g in existing if g.enabled), None)
    instances = request.instances
    if instances is None:
        instances = previous.instances if previous else 1
    created_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    rolling = request.strategy == "rolling-red-black"
    definition = rt.provider.definition(
        NewServerGroup(
            name=name,
            region=region,
            image=request.image,
            instances=0 if rolling else instances,
            spec=request.spec,
            labels={
                **server_group_labels(name, __version__, created_at),
                **({LABEL_RUN_KEY: request.run_key} if request.run_key else {}),
            },
        )
    )
    plan = RegionPlan(region, name, instances, definition, previous, existing, adopted=adopted)
    plan.steps = strategy_steps(request, plan)
    guard_clean_up(plan)
    return plan


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


def is_earlier_attempt(group: ServerGroup, request: Request) -> bool:
    """Created by this deploy's run key for the same image, and still enabled (a group an
    earlier attempt rolled back is not carried on: the rerun deploys afresh)."""
    return (
        bool(request.run_key)
        and group.labels.get(LABEL_RUN_KEY) == request.run_key
        and group.image == request.image
        and group.enabled
    )


def strategy_steps(request: Request, plan: RegionPlan) -> list[Step]:
    others, new = plan.others, plan.name.name
    if request.strategy == "highlander":
        return [Step("destroy", g.name) for g in sorted(others, key=age_key)]
    steps: list[Step] = []
    if request.strategy == "rolling-red-black":
        serving = [g for g in others if g.serving]
        grown = plan.adopted.instances if plan.adopted else 0
        for pct in request.steps:
            size = math.ceil(plan.instances * pct / 100)
            if size > grown:
                steps.append(Step("resize", new, size))
                grown = size
            for g in serving:
                if pct == 100:
                    steps.append(Step("disable", g.name, g.instances))
                else:
                    steps.append(Step("resize", g.name, g.instances - g.instances * pct // 100))
    if request.strategy in ("red-black", "rolling-red-black"):
        disabled = {s.group for s in steps if s.verb == "disable"}
        steps += [
            Step("disable", g.name, g.instances)
            for g in others
            if g.enabled and g.name not in disabled
        ]
        if request.max_remaining is not None:
            extra = others[request.max_remaining :]
            steps += [Step("destroy", g.name) for g in sorted(extra, key=age_key)]
    return dedupe_resizes(steps)


def dedupe_resizes(steps: list[Step]) -> list[Step]:
    """Drop resizes that would not change a size (small groups in rolling steps)."""
    sizes: dict[str, int] = {}
    kept = []
    for step in steps:
        if step.verb == "resize" and sizes.get(step.group) == step.instances:
            continue
        sizes[step.group] = step.instances
        kept.append(step)
    return kept


def plan_fields(request: Request, plan: RegionPlan) -> dict[str, object]:
    return {
        "server_group": plan.name.name,
        "cluster": request.cluster.name,
        "region": plan.region,
        "image": request.image,
        "instances": plan.instances,
        "previous_server_group": plan.previous.name if plan.previous else None,
        "strategy": request.strategy,
        "disabled_server_groups": [s.group for s in plan.steps if s.verb == "disable"],
        "destroyed_server_groups": [s.group for s in plan.steps if s.verb == "destroy"],
    }


def deploy_region(rt: Runtime, request: Request, plan: RegionPlan) -> dict[str, object]:
    fields = plan_fields(request, plan)
    disabled: list[str] = []
    destroyed: list[str] = []
    fields["disabled_server_groups"], fields["destroyed_server_groups"] = disabled, destroyed
    done: list[tuple[Step, ServerGroup]] = []
    created: ServerGroup | None = None
    try:
        if plan.adopted is not None:
            created = refetch(rt, plan.adopted)
        else:
            rt.console.info(f"creating {plan.name} in {plan.region} from {request.image}")
            created = rt.provider.create(plan.region, plan.definition)
        wait_healthy(rt, created)
        for step in plan.steps:
            before = refetch(rt, current(plan, step, created))
            rt.console.info(f"{step.describe()} ({request.strategy})")
            carry_out(rt, step, before)
            done.append((step, before))
            if step.verb != "resize":
                (disabled if step.verb == "disable" else destroyed).append(step.group)
        fields.update(endpoint_fields(refetch(rt, created)))
    except TreadleError as e:
        if created is None or not request.rollback_on_failure:
            e.fields = {**fields, **e.fields}
            raise
        # A cancelled stage must end within seconds: roll back without waiting.
        undo_rt = replace(rt, wait=False) if isinstance(e, Cancelled) else rt
        kind = Cancelled if isinstance(e, Cancelled) else StageFailed
        try:
            with shielded():
                rolled = roll_back(undo_rt, request, created, done)
        except TreadleError as failure:
            raise kind(
                f"{e}; the rollback failed too: {failure}", fields={**fields, "rolled_back": False}
            ) from failure
        raise kind(f"{e}; rolled back: {rolled}", fields={**fields, "rolled_back": True}) from e
    return fields


def current(plan: RegionPlan, step: Step, created: ServerGroup) -> ServerGroup:
    if step.group == created.name:
        return created
    return next(g for g in plan.others if g.name == step.group)


def carry_out(rt: Runtime, step: Step, group: ServerGroup) -> None:
    if step.verb == "resize":
        rt.provider.resize(group, step.instances)
        wait_healthy(rt, group)
    elif step.verb == "disable":
        rt.provider.disable(group, remember=step.instances)
        wait_healthy(rt, group)
    elif step.verb == "destroy":
        rt.provider.destroy(group)
        wait_gone(rt, group)


def roll_back(
    rt: Runtime, request: Request, created: ServerGroup, done: list[tuple[Step, ServerGroup]]
) -> str:
    """Undo the steps done, newest first, then take the new server group out of service.
    Returns what it did, for the error message."""
    rt.deadline.extend(ROLLBACK_GRACE)
    undone: list[str] = []
    for step, before in reversed(done):
        if step.verb == "destroy":
            undone.append(f"{step.group} stays destroyed")
        elif step.group != created.name:
            restore(rt, before)
            undone.append(f"restored {before.name} to {before.instances}")
    if request.destroy_failed:
        rt.provider.destroy(created)
        wait_gone(rt, created)
        undone.append(f"destroyed {created.name}")
    else:
        now = refetch(rt, created)
        if now.enabled:
            rt.provider.disable(now, remember=now.instances)
            wait_healthy(rt, now)
        undone.append(f"disabled {created.name}")
    rt.console.info(f"rolled back: {', '.join(undone)}")
    return ", ".join(undone)


def restore(rt: Runtime, before: ServerGroup) -> None:
    now = refetch(rt, before)
    if not now.enabled:
        rt.provider.enable(now)
        now = refetch(rt, before)
    if now.instances != before.instances:
        rt.provider.resize(now, before.instances)
    wait_healthy(rt, now)
