"""DC/OS Marathon for server groups, Metronome for one-off jobs."""

from treadle.providers.marathon.provider import MarathonProvider

__all__ = ["MarathonProvider"]
