"""Choosing what a stage acts on: a cluster's server groups in age order, and
`--server-group NAME` or `--cluster NAME --target newest|previous|oldest|largest`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from treadle.errors import InputError, NotFound
from treadle.naming import Cluster, parse_cluster, parse_server_group
from treadle.providers.base import Provider, ServerGroup
from treadle.stages.records import capacities
from treadle.stages.runtime import Runtime

TARGETS = ("newest", "previous", "oldest", "largest")


def age_key(group: ServerGroup) -> tuple[str, int]:
    """Oldest first: by creation time, then by sequence."""
    return (group.created_at or "", group.sequence)


def of_cluster(groups: Iterable[ServerGroup], cluster: Cluster) -> list[ServerGroup]:
    """A cluster's server groups, newest first."""
    return sorted((g for g in groups if g.cluster == cluster), key=age_key, reverse=True)


def cluster_groups(rt: Runtime, region: str, cluster: Cluster) -> list[ServerGroup]:
    """A cluster's server groups in a region, newest first."""
    return of_cluster(rt.provider.server_groups(region, cluster), cluster)


def pick(groups: list[ServerGroup], target: str) -> ServerGroup | None:
    """newest, previous (second newest), oldest or largest (by recorded size; ties:
    newest) of groups sorted newest first."""
    if target == "newest":
        return groups[0] if groups else None
    if target == "previous":
        return groups[1] if len(groups) > 1 else None
    if target == "oldest":
        return groups[-1] if groups else None
    if target == "largest":
        sizes = capacities(groups)
        return max(groups, key=lambda g: sizes[g.name], default=None)
    raise InputError(f"unknown --target {target!r}: choose one of {', '.join(TARGETS)}")


@dataclass(frozen=True)
class Selector:
    """`--server-group NAME`, or `--cluster NAME --target newest|previous|oldest|largest`."""

    region: str
    server_group: str | None = None
    cluster: str | None = None
    target: str | None = None

    def checked(self, provider: Provider) -> Selector:
        region = provider.check_region(self.region or provider.default_region)
        if self.server_group and self.cluster:
            raise InputError("give --server-group or --cluster with --target, not both")
        if self.server_group:
            if self.target:
                raise InputError("--target goes with --cluster, not with --server-group")
            parse_server_group(self.server_group)
        elif self.cluster:
            parse_cluster(self.cluster)
            if self.target not in TARGETS:
                raise InputError(
                    f"--cluster needs --target {'|'.join(TARGETS)}"
                    if not self.target
                    else f"unknown --target {self.target!r}: choose one of {', '.join(TARGETS)}"
                )
        else:
            raise InputError("name what to act on: --server-group NAME, or --cluster NAME --target")
        return Selector(region, self.server_group, self.cluster, self.target)

    @property
    def cluster_name(self) -> str:
        if self.server_group:
            return parse_server_group(self.server_group).cluster.name
        return parse_cluster(self.cluster or "").name

    def describe(self) -> str:
        if self.server_group:
            return f"{self.server_group} in {self.region}"
        return f"the {self.target} server group of {self.cluster} in {self.region}"

    def find(self, rt: Runtime) -> tuple[ServerGroup | None, list[ServerGroup]]:
        """The selected group (None when there is none) and its cluster's groups, newest
        first."""
        if self.server_group:
            cluster = parse_server_group(self.server_group).cluster
            siblings = cluster_groups(rt, self.region, cluster)
            return next((g for g in siblings if g.name == self.server_group), None), siblings
        siblings = cluster_groups(rt, self.region, parse_cluster(self.cluster or ""))
        return pick(siblings, self.target or ""), siblings

    def require(self, rt: Runtime) -> tuple[ServerGroup, list[ServerGroup]]:
        found, siblings = self.find(rt)
        if found is None:
            raise NotFound(f"no server group found: {self.describe()}")
        return found, siblings
