"""Docker Swarm: server groups as replicated services, jobs as replicated-job services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.providers.swarm.provider import SwarmProvider

__all__ = ["SwarmProvider"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the command line reads this package's settings without
    # paying for the provider's libraries.
    if name == "SwarmProvider":
        from treadle.providers.swarm.provider import SwarmProvider

        return SwarmProvider
    raise AttributeError(name)
