"""find-image: the image a cluster's server group runs, across one or more regions."""

from __future__ import annotations

import re
from dataclasses import dataclass

from treadle.ci import provenance_fields
from treadle.errors import InputError, NotFound, Refused
from treadle.images import ImageRef
from treadle.naming import parse_cluster
from treadle.providers.base import ServerGroup
from treadle.stages.records import capacity
from treadle.stages.runtime import Runtime
from treadle.stages.selection import age_key, cluster_groups
from treadle.stages.waits import endpoint_fields

SELECTIONS = ("newest", "oldest", "largest", "fail")


@dataclass(frozen=True)
class Query:
    cluster: str
    regions: tuple[str, ...] = ()
    selection: str = "newest"
    include_disabled: bool = False
    image_pattern: str | None = None


def find_image(rt: Runtime, query: Query) -> dict[str, object]:
    cluster = parse_cluster(query.cluster)
    if query.selection not in SELECTIONS:
        raise InputError(
            f"unknown --selection {query.selection!r}: choose one of {', '.join(SELECTIONS)}"
        )
    try:
        pattern = re.compile(query.image_pattern) if query.image_pattern else None
    except re.error as e:
        raise InputError(f"invalid --image-pattern {query.image_pattern!r}: {e}") from None
    regions = [rt.provider.check_region(r) for r in query.regions or [rt.provider.default_region]]

    candidates: list[ServerGroup] = []
    for region in dict.fromkeys(regions):
        candidates += [
            g
            for g in cluster_groups(rt, region, cluster)
            if (g.enabled or query.include_disabled)
            and g.image
            and (pattern is None or pattern.search(g.image))
        ]
    where = ", ".join(dict.fromkeys(regions))
    if not candidates:
        kind = "server group" if query.include_disabled else "enabled server group"
        matching = f" with an image matching {query.image_pattern!r}" if pattern else ""
        raise NotFound(f"no {kind} of {cluster} in {where}{matching}")
    if query.selection == "fail" and len(candidates) > 1:
        names = ", ".join(f"{g.name} ({g.region})" for g in candidates)
        raise Refused(
            f"--selection fail: {len(candidates)} server groups of {cluster} match: {names}"
        )
    chosen = select(candidates, query.selection)
    ref = ImageRef.parse(chosen.image or "")
    rt.console.info(f"{chosen.name} in {chosen.region} runs {chosen.image}")
    return {
        "image": chosen.image,
        "server_group": chosen.name,
        "cluster": cluster.name,
        "region": chosen.region,
        "registry": ref.registry,
        "repository": ref.repository,
        "tag": ref.tag,
        "digest": ref.digest,
        "instances": capacity(chosen),
        "enabled": chosen.enabled,
        "created_at": chosen.created_at,
        # Who deployed it, from which CI run, commit and ref (its provenance labels).
        **({"deployed": deployed} if (deployed := provenance_fields(chosen.labels)) else {}),
        "candidates": len(candidates),
        **endpoint_fields(chosen),
    }


def select(candidates: list[ServerGroup], selection: str) -> ServerGroup:
    if selection == "oldest":
        return min(candidates, key=age_key)
    if selection == "largest":
        return max(candidates, key=lambda g: (capacity(g), age_key(g)))
    return max(candidates, key=age_key)
