"""treadle enable, treadle disable"""

from __future__ import annotations

from typing import Annotated

from treadle.cli.application import flag
from treadle.cli.options import Changes, Common, Lease, Target, stage_command
from treadle.cli.runner import run_stage


@stage_command("disable", "common", "lease", "changes", "target")
def disable_command(
    force: Annotated[
        bool, flag("--force", help="Disable even the last enabled server group of a cluster.")
    ] = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
    target: Target,
) -> None:
    """Take a server group out of service, keeping its definition and size."""
    from treadle.cli.selection import selector
    from treadle.stages.enable_disable import disable

    run_stage(
        "disable",
        common,
        lambda rt, context: disable(rt, selector(target, context), force=force),
        lease,
        changes,
    )


@stage_command("enable", "common", "lease", "changes", "target")
def enable_command(*, common: Common, lease: Lease, changes: Changes, target: Target) -> None:
    """Bring a disabled server group back to the size it had."""
    from treadle.cli.selection import selector
    from treadle.stages.enable_disable import enable

    run_stage(
        "enable", common, lambda rt, context: enable(rt, selector(target, context)), lease, changes
    )
