"""treadle check-preconditions"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from treadle.cli.application import flag, option
from treadle.cli.options import Common, stage_command
from treadle.cli.runner import run_stage
from treadle.cli.values import whole
from treadle.errors import InputError

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime


@stage_command("check-preconditions", "common")
def check_preconditions_command(
    expression: Annotated[
        list[str] | None,
        option(
            "--expression",
            help="'{{ JMESPATH }}' that must be truthy over the context; repeatable.",
        ),
    ] = None,
    cluster_size: Annotated[
        list[str] | None,
        option("--cluster-size", help="A cluster whose size is checked; repeatable."),
    ] = None,
    comparison: Annotated[
        list[str] | None,
        option(
            "--comparison", help="<, <=, ==, >= or >, one for each --cluster-size (or one for all)."
        ),
    ] = None,
    expected: Annotated[
        list[str] | None,
        option("--expected", help="The number compared with, one for each (or one for all)."),
    ] = None,
    region: Annotated[
        str | None, option("--region", help="The region of the clusters checked.")
    ] = None,
    only_enabled: Annotated[
        bool, flag("--only-enabled", help="Count enabled server groups only.")
    ] = False,
    *,
    common: Common,
) -> None:
    """Check expressions over the context and cluster sizes; exit 3 when one fails."""
    from treadle.stages.preconditions import ClusterSize, check_preconditions

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        clusters = [str(c) for c in context.text(cluster_size or [], "--cluster-size")]
        comparisons = [str(c) for c in context.text(comparison or [], "--comparison")]
        numbers = [whole(e, "--expected") for e in context.text(expected or [], "--expected")]

        def nth(given: list[Any], i: int, flag_: str) -> Any:
            if given and not clusters:
                raise InputError(f"{flag_} goes with --cluster-size")
            if len(given) not in (1, len(clusters)):
                raise InputError(f"give one {flag_} for each --cluster-size, or one for all")
            return given[i] if len(given) > 1 else given[0]

        sizes = tuple(
            ClusterSize(
                cluster,
                nth(comparisons, i, "--comparison"),
                nth(numbers, i, "--expected"),
                context.text(region, "--region"),
                only_enabled,
            )
            for i, cluster in enumerate(clusters)
        )
        if not clusters:
            for given, flag_ in ((comparisons, "--comparison"), (numbers, "--expected")):
                if given:
                    raise InputError(f"{flag_} goes with --cluster-size")
        return check_preconditions(rt, context, tuple(expression or []), sizes)

    run_stage("check-preconditions", common, body)
