"""A server group's resources from its spec: the limits and reservations of CPU, memory
and processes, from the short fields (`cpus`, `mem_limit`, ...) or Compose's
`deploy.resources`, not both."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from treadle.errors import InputError
from treadle.providers.engine import fields
from treadle.providers.engine.fields import refuse


def limits(
    given: Mapping[str, Any], deploy_limits: Mapping[str, Any]
) -> tuple[int | None, int | None, int | None]:
    """(nano-CPUs, memory bytes, pids) from `cpus`, `mem_limit`, `pids_limit` or Compose's
    `deploy.resources.limits`, not both."""
    unknown = sorted(set(deploy_limits) - {"cpus", "memory", "pids"})
    if unknown:
        raise refuse(
            f"deploy.resources.limits.{unknown[0]}", "is not applied (cpus, memory and pids are)"
        )
    for short, long in (("cpus", "cpus"), ("mem_limit", "memory"), ("pids_limit", "pids")):
        if short in given and long in deploy_limits:
            raise InputError(f"spec: give {short} or deploy.resources.limits.{long}, not both")
    cpus = given.get("cpus", deploy_limits.get("cpus"))
    memory = given.get("mem_limit", deploy_limits.get("memory"))
    pids = given.get("pids_limit", deploy_limits.get("pids"))
    return (
        None if cpus is None else fields.nano_cpus(cpus),
        None if memory is None else fields.memory_bytes(memory),
        None if pids is None else fields.whole(pids, "pids_limit", -1),
    )


def reservations(
    given: Mapping[str, Any], resources: Mapping[str, Any], provider: str
) -> tuple[int | None, int | None]:
    """(nano-CPUs, memory bytes) reserved: `mem_reservation` or
    `deploy.resources.reservations`; a CPU reservation is Swarm's."""
    unknown = sorted(set(resources) - {"limits", "reservations"})
    if unknown:
        raise refuse(
            f"deploy.resources.{unknown[0]}", "is not applied (limits and reservations are)"
        )
    reserved = fields.mapping(resources.get("reservations"), "deploy.resources.reservations")
    unknown = sorted(set(reserved) - {"cpus", "memory"})
    if unknown:
        raise refuse(
            f"deploy.resources.reservations.{unknown[0]}", "is not applied (cpus and memory are)"
        )
    if "mem_reservation" in given and "memory" in reserved:
        raise InputError(
            "spec: give mem_reservation or deploy.resources.reservations.memory, not both"
        )
    if "cpus" in reserved and provider != "swarm":
        raise refuse(
            "deploy.resources.reservations.cpus", "is Swarm's: a Docker engine reserves no CPUs"
        )
    memory = given.get("mem_reservation", reserved.get("memory"))
    cpus = reserved.get("cpus")
    return (
        None if cpus is None else fields.nano_cpus(cpus, "deploy.resources.reservations.cpus"),
        None if memory is None else fields.memory_bytes(memory, "memory reservation"),
    )
