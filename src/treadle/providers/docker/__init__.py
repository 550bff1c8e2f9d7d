"""The local Docker engine: server groups as containers, jobs as one-off containers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.providers.docker.provider import DockerProvider

__all__ = ["DockerProvider"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the command line reads this package's settings without
    # paying for the provider's libraries.
    if name == "DockerProvider":
        from treadle.providers.docker.provider import DockerProvider

        return DockerProvider
    raise AttributeError(name)
