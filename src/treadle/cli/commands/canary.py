"""treadle promote, treadle abort"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from treadle.cli.application import flag, option
from treadle.cli.options import Changes, Common, Lease, stage_command
from treadle.cli.runner import run_stage

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.canary import CanaryRequest

CLUSTER_HELP = "The cluster whose canary this is, e.g. web-prod."
REGION_HELP = "Region; repeatable."


def request(
    context: Context, cluster: str, region: list[str] | None, destroy: bool = False
) -> CanaryRequest:
    from treadle.stages.canary import CanaryRequest

    return CanaryRequest(
        cluster=context.text(cluster, "--cluster"),
        regions=tuple(context.text(region or [], "--region")),
        destroy=destroy,
    )


@stage_command("promote", "common", "lease", "changes")
def promote_command(
    cluster: Annotated[str, option("--cluster", help=CLUSTER_HELP)],
    region: Annotated[list[str] | None, option("--region", help=REGION_HELP)] = None,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
) -> None:
    """Grow a cluster's canary to its full size, then take the groups it replaces out."""
    from treadle.stages.canary import promote

    run_stage(
        "promote",
        common,
        lambda rt, context: promote(rt, request(context, cluster, region)),
        lease,
        changes,
    )


@stage_command("abort", "common", "lease", "changes")
def abort_command(
    cluster: Annotated[str, option("--cluster", help=CLUSTER_HELP)],
    region: Annotated[list[str] | None, option("--region", help=REGION_HELP)] = None,
    destroy: Annotated[
        bool, flag("--destroy", help="Destroy the canary instead of disabling it.")
    ] = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
) -> None:
    """Take a cluster's canary out and make sure the groups it replaces serve."""
    from treadle.stages.canary import abort

    run_stage(
        "abort",
        common,
        lambda rt, context: abort(rt, request(context, cluster, region, destroy)),
        lease,
        changes,
    )
