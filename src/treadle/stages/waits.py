"""Waiting for a server group to settle (healthy at its size, or gone), and giving up on
one whose instances keep failing."""

from __future__ import annotations

import contextlib

from treadle.errors import ServerGroupGone, StageFailed
from treadle.providers.base import ALIAS, EVENTS, LABEL_NETWORK, Health, ServerGroup
from treadle.stages.runtime import Runtime
from treadle.waiting import Wakeup, wait_for

# Instances of a group's current definition that failed since the stage began before it
# gives up on the group (every provider would keep replacing them).
FAILURES_BEFORE_GIVING_UP = 3


def refetch(rt: Runtime, group: ServerGroup) -> ServerGroup:
    current = rt.provider.server_group(group.region, group.name)
    if current is None:
        raise ServerGroupGone(group.name, group.region)
    return current


def watching(rt: Runtime, group: ServerGroup) -> contextlib.AbstractContextManager[Wakeup | None]:
    """The provider's news of `group` while a wait runs, where it has any."""
    if rt.events and EVENTS in rt.provider.capabilities:
        return rt.provider.watch(group)
    return contextlib.nullcontext()


def hopeless(health: Health) -> str | None:
    """Why a group cannot become healthy, if it cannot."""
    if health.stuck:
        return health.stuck
    if health.desired and health.failed >= FAILURES_BEFORE_GIVING_UP:
        return f"{health.failed} instances failed, the last one: {health.last_failure}"
    return None


def wait_healthy(
    rt: Runtime, group: ServerGroup, label: str | None = None, *, size: int | None = None
) -> Health:
    """Wait until every instance runs the group's definition and passes its checks
    (`size`: the size the stage gave it, which it must still have: StageFailed when
    another hand resized it meanwhile); then an enabled group's instances join its
    cluster's alias (ALIAS), so that a load balancer following it sends nothing to one
    that cannot answer yet (--no-wait: at once)."""
    health = rt.provider.health(group) if not rt.wait else until_healthy(rt, group, label, size)
    join_name(rt, group)
    return health


def join_name(rt: Runtime, group: ServerGroup) -> None:
    """An enabled group's instances that run join its cluster's name (ALIAS); call it once
    they are healthy."""
    if ALIAS in rt.provider.capabilities and group.enabled and group.labels.get(LABEL_NETWORK):
        rt.provider.join(group)


def until_healthy(rt: Runtime, group: ServerGroup, label: str | None, size: int | None) -> Health:
    name = label or group.name

    def check() -> Health:
        health = rt.provider.health(group)
        if size is not None and health.desired != size:
            raise StageFailed(
                f"{name} was resized to {health.desired} by someone else while this stage "
                f"waited for it at {size}"
            )
        why = hopeless(health)
        if why:
            raise StageFailed(f"{name} cannot become healthy: {why}")
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
            goal="healthy",
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
            goal="gone",
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
