"""treadle rollback"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from treadle.cli.application import option
from treadle.cli.options import Changes, Common, Lease, stage_command
from treadle.cli.runner import run_stage

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime


@stage_command("rollback", "common", "lease", "changes")
def rollback_command(
    cluster: Annotated[str, option("--cluster", help="The cluster, e.g. web-prod.")],
    region: Annotated[
        list[str] | None, option("--region", help="Region to roll back; repeatable.")
    ] = None,
    to: Annotated[
        str | None,
        option(
            "--to",
            help="The server group to bring back (default: the newest disabled one older "
            "than the one serving).",
        ),
    ] = None,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
) -> None:
    """Bring the previous server group back at its remembered size, then disable the
    current one."""
    from treadle.stages.rollback import RollbackRequest, rollback

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        return rollback(
            rt,
            RollbackRequest(
                cluster=context.text(cluster, "--cluster"),
                regions=tuple(context.text(region or [], "--region")),
                to=context.text(to, "--to"),
            ),
        )

    run_stage("rollback", common, body, lease, changes)
