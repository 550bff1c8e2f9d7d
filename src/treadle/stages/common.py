"""What every stage shares: the runtime it is given, choosing the server group it acts on,
the traffic guard, and waiting for a server group to settle."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from treadle.console import Console
from treadle.errors import InputError, NotFound, Refused, StageFailed
from treadle.naming import Cluster, parse_cluster, parse_server_group
from treadle.providers.base import Health, Provider, ServerGroup, Watching
from treadle.waiting import Deadline, Wakeup, wait_for

TARGETS = ("newest", "previous", "oldest", "largest")


@dataclass
class Runtime:
    provider: Provider
    console: Console
    deadline: Deadline
    wait: bool = True
    dry_run: bool = False
    # Follow the provider's event stream while waiting, where it has one (--no-events).
    events: bool = True
    # Lines a dry run prints: what the stage would change.
    planned: list[str] = field(default_factory=list)

    def for_region(self, region: str) -> Runtime:
        """The same runtime with log lines prefixed by the region, for concurrent work."""
        return replace(self, console=self.console.child(f"[{region}] "))

    def plan(self, line: str) -> None:
        self.planned.append(line)
        self.console.info(f"dry run: would {line}")


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
    """newest, previous (second newest), oldest or largest (ties: newest) of groups sorted
    newest first."""
    if target == "newest":
        return groups[0] if groups else None
    if target == "previous":
        return groups[1] if len(groups) > 1 else None
    if target == "oldest":
        return groups[-1] if groups else None
    if target == "largest":
        return max(groups, key=lambda g: g.size, default=None)
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


def guard_capacity(
    group: ServerGroup, siblings: list[ServerGroup], action: str, *, force: bool
) -> None:
    """Refuse to take away the last serving server group of a cluster (traffic guard)."""
    if force or not group.serving:
        return
    if any(g.serving for g in siblings if g.name != group.name):
        return
    raise Refused(
        f"refusing to {action} {group.name}: it is the last enabled server group of "
        f"{group.cluster} in {group.region} and serves traffic (--force to do it anyway)"
    )


def refetch(rt: Runtime, group: ServerGroup) -> ServerGroup:
    current = rt.provider.server_group(group.region, group.name)
    if current is None:
        raise StageFailed(f"{group.name} disappeared from {group.region} while treadle acted on it")
    return current


def watching(rt: Runtime, group: ServerGroup) -> contextlib.AbstractContextManager[Wakeup | None]:
    """The provider's news of `group` while a wait runs, where it has any."""
    if rt.events and isinstance(rt.provider, Watching):
        return rt.provider.watch(group)
    return contextlib.nullcontext()


def wait_healthy(rt: Runtime, group: ServerGroup, label: str | None = None) -> Health:
    """Wait until every instance runs the group's definition and passes its checks."""
    if not rt.wait:
        return rt.provider.health(group)
    name = label or group.name

    def check() -> Health:
        health = rt.provider.health(group)
        if health.failure:
            raise StageFailed(f"{name} cannot become healthy: {health.failure}")
        return health

    with rt.console.section(f"waiting for {name}"), watching(rt, group) as wakeup:
        return wait_for(
            check,
            lambda h: h.ok,
            deadline=rt.deadline,
            describe=lambda h: h.describe(),
            what=name,
            log=rt.console.info,
            wakeup=wakeup,
        )


def wait_gone(rt: Runtime, group: ServerGroup) -> None:
    if not rt.wait:
        return
    with rt.console.section(f"waiting until {group.name} is gone"), watching(rt, group) as wakeup:
        wait_for(
            lambda: rt.provider.server_group(group.region, group.name),
            lambda g: g is None,
            deadline=rt.deadline,
            describe=lambda g: "gone" if g is None else "being removed",
            what=group.name,
            log=rt.console.info,
            wakeup=wakeup,
        )


def group_fields(group: ServerGroup) -> dict[str, object]:
    return {
        "server_group": group.name,
        "cluster": group.cluster.name,
        "region": group.region,
        "image": group.image,
        "instances": group.instances,
        "enabled": group.enabled,
        **endpoint_fields(group),
    }


def endpoint_fields(group: ServerGroup) -> dict[str, object]:
    """`endpoints`, only where the provider publishes some."""
    return {"endpoints": list(group.endpoints)} if group.endpoints else {}
