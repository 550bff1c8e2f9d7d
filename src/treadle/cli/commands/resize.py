"""treadle resize"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from treadle.cli.application import flag, option
from treadle.cli.options import Changes, Common, Lease, Target, stage_command
from treadle.cli.runner import run_stage
from treadle.cli.values import number, whole

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime


@stage_command("resize", "common", "lease", "changes", "target")
def resize_command(
    instances: Annotated[str | None, option("--instances", help="Set the size to N.")] = None,
    scale_up: Annotated[str | None, option("--scale-up", help="Add N instances.")] = None,
    scale_down: Annotated[str | None, option("--scale-down", help="Remove N instances.")] = None,
    scale_pct: Annotated[
        str | None,
        option(
            "--scale-pct",
            help="Change the size by P percent (50 grows by half, -25 shrinks by a quarter).",
        ),
    ] = None,
    scale_to_cluster: Annotated[
        bool,
        flag("--scale-to-cluster", help="The size of the cluster's largest server group."),
    ] = False,
    force: Annotated[
        bool,
        flag(
            "--force",
            help="Resize even when the traffic guard says no (the last serving group to 0).",
        ),
    ] = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
    target: Target,
) -> None:
    """Set a server group's size and wait until it is reached and healthy."""
    from treadle.cli.selection import selector
    from treadle.stages.resize import Size, resize

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        size = Size(
            instances=whole(context.text(instances, "--instances"), "--instances"),
            scale_up=whole(context.text(scale_up, "--scale-up"), "--scale-up"),
            scale_down=whole(context.text(scale_down, "--scale-down"), "--scale-down"),
            scale_pct=number(context.text(scale_pct, "--scale-pct"), "--scale-pct"),
            scale_to_cluster=scale_to_cluster or None,
        )
        return resize(rt, selector(target, context), size, force=force)

    run_stage("resize", common, body, lease, changes)
