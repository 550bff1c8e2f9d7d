"""clone: a new server group from an existing one's definition (the spec it was deployed
from, recorded on it), with overrides: another image, size or cluster, and a spec laid
over the source's; then deploy's strategies and rollback, exactly as deploy."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from treadle.errors import InputError
from treadle.naming import Cluster, parse_cluster
from treadle.providers.base import (
    LABEL_CLONED_FROM,
    LABEL_NETWORK,
    LABEL_RUN_KEY,
    LABEL_SPEC,
    ServerGroup,
)
from treadle.stages.deploy import deploy
from treadle.stages.deploy_plan import Request
from treadle.stages.records import capacities
from treadle.stages.runtime import Runtime
from treadle.stages.selection import Selector, cluster_groups


@dataclass(frozen=True)
class CloneRequest:
    source: Selector
    # The deploy to make: its cluster (None: the source's), image (None: the source's),
    # size (None: the source's), and the spec laid over the source's.
    deploy: Request
    into: Cluster | None = None


def overlay(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """`over` laid over `base`: mappings merged key by key, anything else replaced."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def clone(rt: Runtime, request: CloneRequest) -> dict[str, object]:
    selector = request.source.checked(rt.provider)
    earlier = earlier_attempt(rt, selector, request.into)
    if earlier is not None:
        return carry_on(rt, request, earlier)
    found, siblings = selector.find(rt)
    if found is None:
        raise InputError(f"the source server group does not exist: {selector.describe()}")
    recorded = found.labels.get(LABEL_SPEC)
    if recorded is None:
        raise InputError(
            f"{found.name} has no recorded spec to clone (it was not deployed by this version "
            "of treadle): deploy from a --spec instead"
        )
    spec = overlay(json.loads(recorded), request.deploy.spec or {})
    made = replace(
        request.deploy,
        cluster=request.into or found.cluster,
        image=request.deploy.image or found.image or "",
        regions=(found.region,),
        instances=request.deploy.instances
        if request.deploy.instances is not None
        # Its size when whole (a group half grown by a cut-short deploy counts whole).
        else capacities(siblings)[found.name],
        spec=spec,
        network=request.deploy.network or found.labels.get(LABEL_NETWORK),
        cloned_from=found.name,
    )
    rt.console.info(f"cloning {found.name} in {found.region} into {made.cluster}")
    return {**deploy(rt, made), "source": found.name}


def earlier_attempt(rt: Runtime, selector: Selector, into: Cluster | None) -> ServerGroup | None:
    """The clone an earlier attempt of this run made (run key), still enabled and the
    newest of its cluster: a rerun carries it on from what it was made from, never from
    the source chosen again (`--target newest` is that clone now, and a highlander may
    have destroyed the source)."""
    if not rt.run_key:
        return None
    cluster = into or parse_cluster(selector.cluster_name)
    groups = cluster_groups(rt, selector.region, cluster)
    newest = groups[0] if groups else None
    if newest is None or not newest.enabled or newest.labels.get(LABEL_RUN_KEY) != rt.run_key:
        return None
    if not newest.labels.get(LABEL_CLONED_FROM) or LABEL_SPEC not in newest.labels:
        return None
    return newest


def carry_on(rt: Runtime, request: CloneRequest, earlier: ServerGroup) -> dict[str, object]:
    source = earlier.labels[LABEL_CLONED_FROM]
    made = replace(
        request.deploy,
        cluster=earlier.cluster,
        image=earlier.image or "",
        regions=(earlier.region,),
        spec=json.loads(earlier.labels[LABEL_SPEC]),
        network=request.deploy.network or earlier.labels.get(LABEL_NETWORK),
        cloned_from=source,
    )
    rt.console.info(f"{earlier.name} was cloned from {source} by an earlier attempt of this run")
    return {**deploy(rt, made), "source": source}
