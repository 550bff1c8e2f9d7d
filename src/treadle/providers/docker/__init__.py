"""The local Docker engine: server groups as containers, jobs as one-off containers."""

from treadle.providers.docker.provider import DockerProvider

__all__ = ["DockerProvider"]
