"""What a stage run decided, kept on the cluster, so that its rerun (a CI's retry, with
the same run key and the same arguments) carries out that decision again instead of
deciding anew from a cluster its first attempt already changed: `resize --scale-up 2`
retried grows by 2, not 4; `destroy --target oldest` retried destroys one group, not two.

The journal is one record per cluster and region beside its lease (the lease's record
kind, under the claim name JOURNAL), rewritten only under the lease, and keeping the last
KEEP decisions. A decision is found by the run key, the stage and its arguments (so that
two different resizes in one job are two decisions), and only by a later attempt where
the CI system tells attempts apart (two identical steps of one attempt are two steps).
A stage uses a decision only while the cluster is as it left it, before or after acting
(another run may have changed it since: then it decides anew). Without a run key
nothing is kept."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from treadle.errors import ProviderError
from treadle.providers.base import LeaseKey
from treadle.stages.lease import LABEL_LEASE, now, timestamp
from treadle.stages.runtime import Runtime

JOURNAL = "journal"
KEEP = 20
PREFIX = "treadle.decided."
# The record never expires: it is no lease.
NEVER = "9999-12-31T00:00:00.000Z"


def recall(
    rt: Runtime, region: str, cluster: str, request: object, **kinds: type
) -> dict[str, Any] | None:
    """What this run decided for `request` earlier, if it did: a decision holding each
    of `kinds` (name=type), or None."""
    if not rt.run_key:
        return None
    found = rt.provider.lease(LeaseKey(region, cluster, claim=JOURNAL))
    value = found.labels.get(_label(rt, request)) if found else None
    try:
        decided = json.loads(value) if value else None
    except ValueError:
        return None
    if not isinstance(decided, dict):
        return None
    if not all(isinstance(decided.get(name), kind) for name, kind in kinds.items()):
        return None
    if rt.attempt is not None and decided.get("attempt") == rt.attempt:
        return None  # the same step twice in one attempt: a second decision, not a retry
    return decided


def note(rt: Runtime, region: str, cluster: str, request: object, **decision: object) -> None:
    """Keep this run's decision for `request`, before acting on it (the lease is held)."""
    if not rt.run_key or rt.dry_run:
        return
    key = LeaseKey(region, cluster, claim=JOURNAL)
    current = rt.provider.lease(key)
    kept = {k: v for k, v in (current.labels if current else {}).items() if k.startswith(PREFIX)}
    kept[_label(rt, request)] = json.dumps(
        {**decision, "at": timestamp(now()), "attempt": rt.attempt},
        separators=(",", ":"),
        sort_keys=True,
    )
    newest = sorted(kept, key=lambda k: _at(kept[k]), reverse=True)[:KEEP]
    if current is not None:
        rt.provider.delete_lease(current)
    made = rt.provider.create_lease(
        key, {LABEL_LEASE: cluster, **{k: kept[k] for k in newest}}, NEVER
    )
    if made is None:
        raise ProviderError(f"the journal of {cluster} in {region} was written by another run")


def _label(rt: Runtime, request: object) -> str:
    made_of = f"{rt.run_key}|{rt.stage}|{request!r}"
    return PREFIX + hashlib.sha256(made_of.encode()).hexdigest()[:16]


def _at(value: str) -> str:
    try:
        return str(json.loads(value).get("at", ""))
    except (ValueError, AttributeError):
        return ""
