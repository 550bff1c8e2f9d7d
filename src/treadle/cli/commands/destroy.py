"""treadle destroy"""

from __future__ import annotations

from typing import Annotated

from treadle.cli.application import flag
from treadle.cli.options import Changes, Common, Lease, Target, stage_command
from treadle.cli.runner import run_stage


@stage_command("destroy", "common", "lease", "changes", "target")
def destroy_command(
    force: Annotated[
        bool, flag("--force", help="Destroy even the last enabled server group of a cluster.")
    ] = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
    target: Target,
) -> None:
    """Remove a server group (refused for the last enabled one unless --force)."""
    from treadle.cli.selection import selector
    from treadle.stages.destroy import destroy

    run_stage(
        "destroy",
        common,
        lambda rt, context: destroy(rt, selector(target, context), force=force),
        lease,
        changes,
    )
