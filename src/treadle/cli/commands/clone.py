"""treadle clone"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from treadle.cli.application import option
from treadle.cli.making import (
    DelayBeforeDisable,
    DestroyFailed,
    MaxRemaining,
    Network,
    RollbackOnFailure,
    Steps,
)
from treadle.cli.options import Changes, Common, Lease, stage_command
from treadle.cli.runner import run_stage
from treadle.cli.spec import load_spec
from treadle.cli.values import duration, percentages, whole
from treadle.errors import InputError

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime


@stage_command("clone", "common", "lease", "changes")
def clone_command(
    source: Annotated[
        str | None, option("--source", help="The server group to clone, e.g. web-prod-v003.")
    ] = None,
    cluster: Annotated[
        str | None, option("--cluster", help="Or the cluster of the source, with --target.")
    ] = None,
    target: Annotated[
        str | None,
        option("--target", help="newest, previous, oldest or largest server group of --cluster."),
    ] = None,
    region: Annotated[str | None, option("--region", help="The source's region.")] = None,
    app_: Annotated[
        str | None, option("--app", help="Clone into this application's cluster instead.")
    ] = None,
    stack: Annotated[str | None, option("--stack", help="... with this stack.")] = None,
    detail: Annotated[str | None, option("--detail", help="... and detail.")] = None,
    image: Annotated[
        str | None, option("--image", help="Another image (default: the source's).")
    ] = None,
    instances: Annotated[
        str | None, option("--instances", help="Another size (default: the source's).")
    ] = None,
    spec: Annotated[
        str | None, option("--spec", help="A spec file laid over the source's spec.")
    ] = None,
    strategy: Annotated[
        str, option("--strategy", help="none, highlander, red-black or rolling-red-black.")
    ] = "none",
    max_remaining: MaxRemaining = None,
    steps: Steps = None,
    delay_before_disable: DelayBeforeDisable = None,
    network: Network = None,
    rollback_on_failure: RollbackOnFailure = False,
    destroy_failed: DestroyFailed = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
) -> None:
    """A new server group from an existing one's definition, with overrides, then a
    strategy as deploy."""
    from treadle import naming
    from treadle.stages.clone import CloneRequest, clone
    from treadle.stages.deploy_plan import Request
    from treadle.stages.selection import Selector
    from treadle.stages.strategies import DEFAULT_STEPS

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        def r(value: Any, flag: str) -> Any:
            return context.text(value, flag)

        if not (source or cluster):
            raise InputError("name the source: --source SERVER_GROUP, or --cluster with --target")
        into = (
            naming.cluster(r(app_, "--app"), r(stack, "--stack"), r(detail, "--detail"))
            if app_
            else None
        )
        if (stack or detail) and not app_:
            raise InputError("--stack and --detail go with --app")
        step_text, delay = (
            context.render(steps, "--steps"),
            r(delay_before_disable, "--delay-before-disable"),
        )
        made = Request(
            # clone decides it: `into`, else the source's own.
            cluster=into or naming.Cluster("clone"),
            image=r(image, "--image") or "",
            instances=whole(r(instances, "--instances"), "--instances"),
            spec=load_spec(r(spec, "--spec"), context),
            strategy=r(strategy, "--strategy"),
            max_remaining=whole(r(max_remaining, "--max-remaining"), "--max-remaining"),
            steps=percentages(step_text, "--steps") if step_text else DEFAULT_STEPS,
            rollback_on_failure=rollback_on_failure,
            destroy_failed=destroy_failed,
            delay_before_disable=duration(delay, "--delay-before-disable") if delay else 0.0,
            network=r(network, "--network"),
        )
        selected = Selector(
            region=r(region, "--region") or "",
            server_group=r(source, "--source"),
            cluster=r(cluster, "--cluster"),
            target=r(target, "--target"),
        )
        return clone(rt, CloneRequest(selected, made, into))

    run_stage("clone", common, body, lease, changes)
