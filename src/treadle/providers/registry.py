"""Providers by name, as dotted paths imported only when a stage asks for one, so that a
stage on Marathon never pays for the Docker SDK and `treadle --help` pays for neither.
Each provider owns its settings (treadle.providers.settings); adding a provider is one
entry here."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from treadle.errors import InputError
from treadle.providers.settings import Option, options_of

if TYPE_CHECKING:
    from treadle.console import Console
    from treadle.providers.base import Provider
    from treadle.waiting import Deadline

DEFAULT = "docker"


@dataclass(frozen=True)
class Entry:
    provider: str  # module:Class
    settings: str  # module:Class, a light module: the CLI reads it to offer its options


REGISTRY: dict[str, Entry] = {
    "marathon": Entry(
        "treadle.providers.marathon.provider:MarathonProvider",
        "treadle.providers.marathon.settings:MarathonSettings",
    ),
    "docker": Entry(
        "treadle.providers.docker.provider:DockerProvider",
        "treadle.providers.settings:NoSettings",
    ),
    "swarm": Entry(
        "treadle.providers.swarm.provider:SwarmProvider",
        "treadle.providers.settings:NoSettings",
    ),
}


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def settings_class(name: str) -> type[Any]:
    cls: type[Any] = _load(REGISTRY[name].settings)
    return cls


def all_options() -> dict[str, Option]:
    """Every provider's options, each once (field name -> option)."""
    found: dict[str, Option] = {}
    for name in REGISTRY:
        for field_name, option in options_of(settings_class(name)).items():
            assert found.get(field_name, option) == option, f"{field_name} declared twice"
            found[field_name] = option
    return found


def choose(name: str | None, given: Mapping[str, Any]) -> str:
    """`--provider`, else the provider whose settings say they were given (a DC/OS URL),
    else the local Docker engine."""
    if not name:
        chosen = [n for n in REGISTRY if getattr(settings_for_values(n, given), "given", False)]
        name = chosen[0] if chosen else DEFAULT
    if name not in REGISTRY:
        raise InputError(
            f"unknown provider {name!r}: choose one of {', '.join(sorted(REGISTRY))}"
            " (--provider, TREADLE_PROVIDER)"
        )
    return name


def settings_for_values(name: str, given: Mapping[str, Any]) -> Any:
    cls = settings_class(name)
    return cls(**{f.name: given[f.name] for f in fields(cls) if given.get(f.name) is not None})


def settings_for(name: str, given: Mapping[str, Any]) -> Any:
    """The settings of provider `name` from option values; an option of another
    provider is bad input, never silently ignored."""
    own = options_of(settings_class(name))
    others = all_options()
    stray = [
        others[field].flag
        for field, value in given.items()
        if field in others and field not in own and value not in (None, False)
    ]
    if stray:
        raise InputError(
            f"{', '.join(sorted(stray))}: not an option of the {name} provider "
            "(--provider, TREADLE_PROVIDER)"
        )
    return settings_for_values(name, given)


def open_provider(
    name: str, settings: Any, *, deadline: Deadline, console: Console, request_timeout: float
) -> Provider:
    cls = _load(REGISTRY[name].provider)
    provider: Provider = cls(
        settings, deadline=deadline, console=console, request_timeout=request_timeout
    )
    return provider
