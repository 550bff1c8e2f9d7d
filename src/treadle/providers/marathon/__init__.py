"""DC/OS Marathon for server groups, Metronome for one-off jobs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.providers.marathon.provider import MarathonProvider

__all__ = ["MarathonProvider"]


def __getattr__(name: str) -> Any:
    # Imported on first use: the command line reads this package's settings without
    # paying for the provider's libraries.
    if name == "MarathonProvider":
        from treadle.providers.marathon.provider import MarathonProvider

        return MarathonProvider
    raise AttributeError(name)
