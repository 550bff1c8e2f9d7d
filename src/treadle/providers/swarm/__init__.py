"""Docker Swarm: server groups as replicated services, jobs as replicated-job services."""

from treadle.providers.swarm.provider import SwarmProvider

__all__ = ["SwarmProvider"]
