"""treadle find-image"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from treadle.cli.application import flag, option
from treadle.cli.options import Common, stage_command
from treadle.cli.runner import run_stage

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime


@stage_command("find-image", "common")
def find_image_command(
    cluster: Annotated[str, option("--cluster", help="The cluster, e.g. web-prod.")],
    region: Annotated[
        list[str] | None, option("--region", help="Region to look in; repeatable.")
    ] = None,
    selection: Annotated[
        str,
        option("--selection", help="newest, oldest, largest, or fail when more than one matches."),
    ] = "newest",
    include_disabled: Annotated[
        bool, flag("--include-disabled", help="Consider disabled server groups too.")
    ] = False,
    image_pattern: Annotated[
        str | None,
        option("--image-pattern", help="Only images matching this regular expression."),
    ] = None,
    *,
    common: Common,
) -> None:
    """Find the image a cluster's server group runs."""
    from treadle.stages.find_image import Query, find_image

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        return find_image(
            rt,
            Query(
                cluster=context.text(cluster, "--cluster"),
                regions=tuple(context.text(region or [], "--region")),
                selection=context.text(selection, "--selection"),
                include_disabled=include_disabled,
                image_pattern=context.text(image_pattern, "--image-pattern"),
            ),
        )

    run_stage("find-image", common, body)
