"""treadle deploy"""

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
from treadle.cli.spec import load_spec, sized
from treadle.cli.values import duration, number, percentages, whole
from treadle.errors import InputError

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime


@stage_command("deploy", "common", "lease", "changes")
def deploy_command(
    image: Annotated[str, option("--image", help="The image to deploy, e.g. registry/web:1.4.2.")],
    app_: Annotated[
        str | None, option("--app", help="Application: the first part of the cluster name.")
    ] = None,
    stack: Annotated[str | None, option("--stack", help="Stack, e.g. prod.")] = None,
    detail: Annotated[str | None, option("--detail", help="Detail, e.g. canary.")] = None,
    cluster: Annotated[
        str | None, option("--cluster", help="Or the whole cluster name, e.g. web-prod-canary.")
    ] = None,
    region: Annotated[
        list[str] | None,
        option("--region", help="Region; repeat it to deploy to several at once."),
    ] = None,
    spec: Annotated[
        str | None,
        option(
            "--spec",
            help="Provider spec file, JSON or YAML: a Marathon app definition, or a Docker/Swarm service spec.",
        ),
    ] = None,
    service: Annotated[
        str | None,
        option("--service", help="With a Compose file as --spec: the service to deploy."),
    ] = None,
    instances: Annotated[
        str | None,
        option("--instances", help="Size (default: the newest enabled server group's, else 1)."),
    ] = None,
    strategy: Annotated[
        str,
        option("--strategy", help="none, highlander, red-black, rolling-red-black or canary."),
    ] = "none",
    canary_instances: Annotated[
        str | None,
        option("--canary-instances", help="canary: start the new server group at N instances."),
    ] = None,
    canary_percent: Annotated[
        str | None,
        option("--canary-percent", help="canary: or at P percent of its size."),
    ] = None,
    max_remaining: MaxRemaining = None,
    steps: Steps = None,
    network: Network = None,
    verify: Annotated[
        str | None,
        option(
            "--verify",
            help="A verify file (YAML: verify's options): check the new server group once "
            "healthy, before the strategy takes the old ones out; a failed check fails the deploy.",
        ),
    ] = None,
    rollback_on_failure: RollbackOnFailure = False,
    delay_before_disable: DelayBeforeDisable = None,
    destroy_failed: DestroyFailed = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
) -> None:
    """Create the next server group of a cluster, wait until healthy, apply a strategy."""
    from treadle import naming
    from treadle.cli.commands.verify import load_verify_file
    from treadle.stages.deploy import deploy
    from treadle.stages.deploy_plan import Request
    from treadle.stages.strategies import DEFAULT_STEPS

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        def r(value: Any, flag: str) -> Any:
            return context.text(value, flag)

        named = r(cluster, "--cluster")
        if named and (app_ or stack or detail):
            raise InputError("give --cluster or --app/--stack/--detail, not both")
        if named:
            target = naming.parse_cluster(named)
        elif app_:
            target = naming.cluster(r(app_, "--app"), r(stack, "--stack"), r(detail, "--detail"))
        else:
            raise InputError("name the cluster: --app (with --stack, --detail) or --cluster")
        step_text = context.render(steps, "--steps")
        delay = r(delay_before_disable, "--delay-before-disable")
        spec_doc = load_spec(r(spec, "--spec"), context, r(service, "--service"), rt.console.warn)
        verify_file = r(verify, "--verify")
        return deploy(
            rt,
            Request(
                cluster=target,
                image=str(r(image, "--image")),
                regions=tuple(r(region or [], "--region")),
                instances=sized(spec_doc, whole(r(instances, "--instances"), "--instances")),
                spec=spec_doc,
                strategy=r(strategy, "--strategy"),
                max_remaining=whole(r(max_remaining, "--max-remaining"), "--max-remaining"),
                steps=percentages(step_text, "--steps") if step_text else DEFAULT_STEPS,
                rollback_on_failure=rollback_on_failure,
                destroy_failed=destroy_failed,
                delay_before_disable=duration(delay, "--delay-before-disable") if delay else 0.0,
                network=r(network, "--network"),
                canary_instances=whole(
                    r(canary_instances, "--canary-instances"), "--canary-instances"
                ),
                canary_percent=number(r(canary_percent, "--canary-percent"), "--canary-percent"),
                verify=load_verify_file(verify_file, context) if verify_file else None,
            ),
        )

    run_stage("deploy", common, body, lease, changes)
