"""Providers by name, imported only when a stage asks for one, so that a stage on
Marathon never pays for the Docker SDK and `treadle --help` pays for neither."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from treadle.errors import InputError

if TYPE_CHECKING:
    from treadle.console import Console
    from treadle.providers.base import Provider
    from treadle.waiting import Deadline

# name -> (module:class, the pip extra that brings its library)
REGISTRY: dict[str, tuple[str, str | None]] = {
    "marathon": ("treadle.providers.marathon.provider:MarathonProvider", None),
    "docker": ("treadle.providers.docker.provider:DockerProvider", "docker"),
    "swarm": ("treadle.providers.swarm.provider:SwarmProvider", "docker"),
}


@dataclass(frozen=True)
class Connection:
    """How to reach and log in to a provider; secrets never leave this object in a log."""

    marathon_url: str | None = None
    metronome_url: str | None = None
    dcos_url: str | None = None
    token: str | None = None
    username: str | None = None
    password: str | None = None
    service_account_uid: str | None = None
    service_account_key: str | None = None
    ca_cert: str | None = None
    insecure: bool = False
    # Seconds one HTTP request may take before it counts as a transient fault and is retried.
    request_timeout: float = 30.0

    def secrets(self) -> list[str]:
        return [s for s in (self.token, self.password) if s]

    def __repr__(self) -> str:
        return "Connection(...)"


def choose(name: str | None, connection: Connection) -> str:
    """`--provider`, else marathon when a DC/OS URL is given, else the local Docker engine."""
    if not name:
        dcos = connection.marathon_url or connection.metronome_url or connection.dcos_url
        name = "marathon" if dcos else "docker"
    if name not in REGISTRY:
        raise InputError(
            f"unknown provider {name!r}: choose one of {', '.join(sorted(REGISTRY))}"
            " (--provider, TREADLE_PROVIDER)"
        )
    return name


def open_provider(
    name: str, connection: Connection, *, deadline: Deadline, console: Console
) -> Provider:
    target, extra = REGISTRY[name]
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if extra is None or (e.name or "").startswith("treadle"):
            raise
        raise InputError(
            f"the {name} provider needs the {e.name!r} library: pip install 'treadle[{extra}]'"
        ) from None
    provider: Provider = getattr(module, class_name)(connection, deadline=deadline, console=console)
    return provider
