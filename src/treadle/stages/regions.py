"""Stages that act on several regions: one result, and every region checked before any
is changed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from treadle.errors import TreadleError, Unexpected


def combine(per_region: list[dict[str, object]]) -> dict[str, object]:
    """One region's fields at the top level; with several, the first region's there too
    and every region's under `regions`."""
    if len(per_region) == 1:
        return per_region[0]
    return {**per_region[0], "regions": per_region}


def each_region(
    regions: Sequence[str], act: Callable[[str], dict[str, object]]
) -> dict[str, object]:
    """`act` on each region in turn; when one fails, its error carries what the regions
    before it did, so that the result still says it."""
    done: list[dict[str, object]] = []
    for region in regions:
        try:
            done.append(act(region))
        except Exception as caught:
            if not done:
                raise
            e = caught if isinstance(caught, TreadleError) else Unexpected.of(caught)
            e.fields = combine([*done, {"region": region, **e.fields, "status": "failed"}])
            if e is caught:
                raise
            raise e from caught
    return combine(done)
