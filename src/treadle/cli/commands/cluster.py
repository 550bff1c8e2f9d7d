"""treadle disable-cluster, scale-down-cluster, shrink-cluster"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from treadle.cli.application import flag, option
from treadle.cli.options import Changes, Common, Lease, stage_command
from treadle.cli.runner import run_stage
from treadle.cli.values import whole

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime

CLUSTER_HELP = "The cluster, e.g. web-prod."
REGION_HELP = "Region to act in; repeatable (each on its own)."
EXCLUDE_HELP = (
    "A server group never touched, with any newer (default: the server group of the "
    "deploy result given as --context deploy=FILE); repeatable."
)
NOT_FOUND_HELP = "Succeed when the cluster has no server group in a region."
FORCE_HELP = "Act even when the traffic guard says no."

# What the three stages take alike.
ClusterName = Annotated[str, option("--cluster", help=CLUSTER_HELP)]
Regions = Annotated[list[str] | None, option("--region", help=REGION_HELP)]
Excludes = Annotated[list[str] | None, option("--exclude", help=EXCLUDE_HELP)]
NotFound = Annotated[bool, flag("--continue-if-cluster-not-found", help=NOT_FOUND_HELP)]
Force = Annotated[bool, flag("--force", help=FORCE_HELP)]


def deployed(context: Context) -> list[str]:
    """The server groups of a deploy result in the context (`--context deploy=FILE`)."""
    found = context.data.get("deploy")
    if not isinstance(found, dict):
        return []
    results = [found, *(r for r in found.get("regions") or [] if isinstance(r, dict))]
    return [str(r["server_group"]) for r in results if r.get("server_group")]


def run(
    stage: str,
    action: str,
    common: Common,
    lease: Lease,
    changes: Changes,
    cluster: str,
    region: list[str] | None,
    keep: Any,
    keep_flag: str,
    prefer_larger: bool,
    allow_active: bool,
    exclude: list[str] | None,
    continue_if_not_found: bool,
    force: bool,
) -> None:
    from treadle.stages.cluster import ClusterRequest, cluster_stage

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        def r(value: Any, flag: str) -> Any:
            return context.text(value, flag)

        count = whole(r(keep, keep_flag), keep_flag)
        return cluster_stage(
            rt,
            ClusterRequest(
                action=action,
                cluster=r(cluster, "--cluster"),
                regions=tuple(r(region or [], "--region")),
                keep=1 if count is None else count,
                prefer_larger=prefer_larger,
                allow_active=allow_active,
                exclude=tuple(r(exclude or [], "--exclude")) or tuple(deployed(context)),
                continue_if_not_found=continue_if_not_found,
                force=force,
            ),
        )

    run_stage(stage, common, body, lease, changes)


@stage_command("disable-cluster", "common", "lease", "changes")
def disable_cluster_command(
    cluster: ClusterName,
    region: Regions = None,
    remaining_enabled: Annotated[
        str | None, option("--remaining-enabled", help="Keep this many enabled: 1.")
    ] = None,
    prefer_larger: Annotated[
        bool, flag("--prefer-larger", help="Keep the largest enabled, not the newest.")
    ] = False,
    exclude: Excludes = None,
    continue_if_cluster_not_found: NotFound = False,
    force: Force = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
) -> None:
    """Disable every enabled server group of a cluster but the newest (or largest) N."""
    run(
        "disable-cluster",
        "disable",
        common,
        lease,
        changes,
        cluster,
        region,
        remaining_enabled,
        "--remaining-enabled",
        prefer_larger,
        False,
        exclude,
        continue_if_cluster_not_found,
        force,
    )


@stage_command("scale-down-cluster", "common", "lease", "changes")
def scale_down_cluster_command(
    cluster: ClusterName,
    region: Regions = None,
    remaining_full_size: Annotated[
        str | None, option("--remaining-full-size", help="Keep this many at full size: 1.")
    ] = None,
    prefer_larger: Annotated[
        bool, flag("--prefer-larger", help="Keep the largest, not the newest.")
    ] = False,
    allow_scale_down_active: Annotated[
        bool,
        flag("--allow-scale-down-active", help="Scale down enabled server groups too."),
    ] = False,
    exclude: Excludes = None,
    continue_if_cluster_not_found: NotFound = False,
    force: Force = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
) -> None:
    """Scale every server group of a cluster but the newest (or largest) N to 0,
    remembering their size."""
    run(
        "scale-down-cluster",
        "scale-down",
        common,
        lease,
        changes,
        cluster,
        region,
        remaining_full_size,
        "--remaining-full-size",
        prefer_larger,
        allow_scale_down_active,
        exclude,
        continue_if_cluster_not_found,
        force,
    )


@stage_command("shrink-cluster", "common", "lease", "changes")
def shrink_cluster_command(
    cluster: ClusterName,
    region: Regions = None,
    shrink_to: Annotated[
        str | None, option("--shrink-to", help="Keep this many server groups: 1.")
    ] = None,
    retain_larger: Annotated[
        bool, flag("--retain-larger", help="Keep the largest, not the newest.")
    ] = False,
    allow_delete_active: Annotated[
        bool,
        flag("--allow-delete-active", help="Destroy enabled server groups too (disabled first)."),
    ] = False,
    exclude: Excludes = None,
    continue_if_cluster_not_found: NotFound = False,
    force: Force = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
) -> None:
    """Destroy every server group of a cluster but the newest (or largest) N."""
    run(
        "shrink-cluster",
        "shrink",
        common,
        lease,
        changes,
        cluster,
        region,
        shrink_to,
        "--shrink-to",
        retain_larger,
        allow_delete_active,
        exclude,
        continue_if_cluster_not_found,
        force,
    )
