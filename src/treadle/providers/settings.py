"""How a provider's own options are declared: each provider owns its settings (a frozen
dataclass whose fields say their flag, help and whether they are secret), and the
command line offers each field as one option. Nothing here imports a provider's
libraries, so building the command line stays cheap."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Option:
    flag: str
    help: str
    # Environment variables read besides TREADLE_<OPTION>.
    envvars: tuple[str, ...] = ()
    # Masked in everything treadle prints or writes.
    secret: bool = False
    # A URL whose user info (user:password@) is a secret.
    url: bool = False
    is_flag: bool = False


def setting(
    flag: str,
    help: str,
    *,
    envvars: tuple[str, ...] = (),
    secret: bool = False,
    url: bool = False,
    is_flag: bool = False,
) -> Any:
    """A settings field offered as the command-line option `flag`."""
    default: Any = False if is_flag else None
    return field(
        default=default,
        metadata={"option": Option(flag, help, envvars, secret, url, is_flag)},
    )


def options_of(settings: type[Any]) -> dict[str, Option]:
    """A settings class's fields and the options they are offered as."""
    return {f.name: f.metadata["option"] for f in fields(settings) if "option" in f.metadata}


@dataclass(frozen=True)
class NoSettings:
    """A provider reached without options of its own (the Docker engine's environment,
    DOCKER_HOST and friends, says where it is)."""
