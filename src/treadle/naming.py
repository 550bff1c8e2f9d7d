"""Spinnaker's naming: application, stack and detail form a cluster; a server group is one
numbered version of it (`web-prod-canary-v007`).

Names are checked here, before any provider call, so that a name the provider would
reject is a clear input error instead of a half-done stage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from treadle.errors import InputError

_APP = re.compile(r"[a-z0-9]+")
_STACK = re.compile(r"[a-z0-9]*")
_DETAIL = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_SERVER_GROUP = re.compile(
    r"(?P<app>[a-z0-9]+)(?:-(?P<stack>[a-z0-9]*)(?:-(?P<detail>[a-z0-9]+(?:-[a-z0-9]+)*))?)?"
    r"-v(?P<seq>[0-9]{3})"
)
SEQUENCES = 1000
# Marathon app ids, Docker container names and Swarm service names all accept this length.
MAX_NAME = 63


@dataclass(frozen=True)
class Cluster:
    app: str
    stack: str = ""
    detail: str = ""

    @property
    def name(self) -> str:
        if self.detail:
            return f"{self.app}-{self.stack}-{self.detail}"
        if self.stack:
            return f"{self.app}-{self.stack}"
        return self.app

    def server_group(self, sequence: int) -> str:
        return f"{self.name}-v{sequence:03d}"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class ServerGroupName:
    cluster: Cluster
    sequence: int

    @property
    def name(self) -> str:
        return self.cluster.server_group(self.sequence)

    def __str__(self) -> str:
        return self.name


def cluster(app: str, stack: str | None = None, detail: str | None = None) -> Cluster:
    """Build a cluster from its parts, refusing parts a provider would reject."""
    stack, detail = stack or "", detail or ""
    if not _APP.fullmatch(app or ""):
        raise InputError(f"invalid application {app!r}: use lower-case letters and digits")
    if not _STACK.fullmatch(stack):
        raise InputError(f"invalid stack {stack!r}: use lower-case letters and digits")
    if detail and not _DETAIL.fullmatch(detail):
        raise InputError(
            f"invalid detail {detail!r}: use lower-case letters, digits and single hyphens"
        )
    found = Cluster(app, stack, detail)
    if len(found.server_group(0)) > MAX_NAME:
        raise InputError(f"cluster name {found.name!r} is too long (at most {MAX_NAME - 5})")
    return found


def parse_cluster(name: str) -> Cluster:
    """`web`, `web-prod`, `web-prod-canary`, `web--canary` -> Cluster."""
    app, _, rest = (name or "").partition("-")
    stack, _, detail = rest.partition("-")
    try:
        parsed = cluster(app, stack, detail)
    except InputError as e:
        raise InputError(f"invalid cluster {name!r}: {e}") from None
    if parsed.name != name:
        raise InputError(f"invalid cluster {name!r}: expected app[-stack[-detail]], e.g. web-prod")
    return parsed


def parse_server_group(name: str) -> ServerGroupName:
    """`web-prod-v007` -> (cluster web-prod, 7); an input error names the expected form."""
    parsed = try_parse_server_group(name)
    if parsed is None:
        raise InputError(
            f"invalid server group {name!r}: expected app[-stack[-detail]]-vNNN, "
            "for example web-prod-v007"
        )
    return parsed


def try_parse_server_group(name: str) -> ServerGroupName | None:
    """The parsed name, or None for names that are not treadle's (other apps in a region)."""
    m = _SERVER_GROUP.fullmatch(name or "")
    if m is None:
        return None
    return ServerGroupName(Cluster(m["app"], m["stack"] or "", m["detail"] or ""), int(m["seq"]))


def next_sequence(used: Iterable[int]) -> int:
    """The highest sequence in use plus one, wrapping after 999 and skipping used ones."""
    taken = set(used)
    if not taken:
        return 0
    if len(taken) >= SEQUENCES:
        raise InputError("every sequence 000-999 of this cluster is in use: destroy old ones")
    candidate = (max(taken) + 1) % SEQUENCES
    while candidate in taken:
        candidate = (candidate + 1) % SEQUENCES
    return candidate
