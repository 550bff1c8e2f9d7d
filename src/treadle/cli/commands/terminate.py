"""treadle terminate-instances"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from treadle.cli.application import flag, option
from treadle.cli.options import Changes, Common, Lease, Target, stage_command
from treadle.cli.runner import run_stage
from treadle.cli.values import whole

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime


@stage_command("terminate-instances", "common", "lease", "changes", "target")
def terminate_instances_command(
    instance: Annotated[
        list[str] | None, option("--instance", help="An instance's id; repeatable.")
    ] = None,
    count: Annotated[str | None, option("--count", help="Or this many instances.")] = None,
    random_: Annotated[
        bool, flag("--random", help="With --count: chosen at random, not the oldest first.")
    ] = False,
    decrement: Annotated[
        bool, flag("--decrement", help="Shrink the server group instead of replacing them.")
    ] = False,
    force: Annotated[bool, flag("--force", help="Even when the traffic guard says no.")] = False,
    *,
    common: Common,
    lease: Lease,
    changes: Changes,
    target: Target,
) -> None:
    """Kill instances of a server group and wait until their replacements are healthy."""
    from treadle.cli.selection import selector
    from treadle.stages.terminate import TerminateRequest, terminate_instances

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        return terminate_instances(
            rt,
            TerminateRequest(
                selector=selector(target, context),
                instances=tuple(context.text(instance or [], "--instance")),
                count=whole(context.text(count, "--count"), "--count"),
                random=random_,
                decrement=decrement,
                force=force,
            ),
        )

    run_stage("terminate-instances", common, body, lease, changes)
