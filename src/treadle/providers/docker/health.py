"""A Docker server group's health, from its containers' inspections: running counts an
instance once it stays up after a restart, and an instance that exited for good (or
cannot start) stops the wait at once."""

from __future__ import annotations

from typing import Any

from treadle.providers.base import Health
from treadle.providers.engine.connection import stable


class InstanceHealth:
    """Counts restarts from when treadle started an instance or first saw it."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def started(self, container_id: str) -> None:
        self._seen[container_id] = 0

    def of(self, states: list[dict[str, Any]], enabled: bool, kept_running: bool) -> Health:
        """The health of a server group from its instances' inspections."""
        # Disabled but left running outside the alias: its instances are meant to run.
        meant = enabled or kept_running
        running = [s for s in states if self._running(s)]
        healthy = [
            s
            for s in running
            if (s["State"].get("Health") or {}).get("Status", "healthy") == "healthy"
        ]
        failed, last, stuck = self._failures(states) if enabled else (0, None, None)
        return Health(
            desired=len(states) if meant else 0,
            running=len(running),
            healthy=len(healthy),
            failed=failed,
            last_failure=last,
            stuck=stuck,
        )

    def _restarted(self, inspected: dict[str, Any]) -> int:
        """How often it restarted since treadle started it or first saw it."""
        count: int = inspected["RestartCount"]
        return count - self._seen.setdefault(inspected["Id"], count)

    def _running(self, inspected: dict[str, Any]) -> bool:
        state = inspected["State"]
        if not state["Running"] or state["Restarting"]:
            return False
        # One that crashed and was restarted counts once it stays up, so that a crash loop
        # caught between two crashes is not taken for a running instance.
        return not self._restarted(inspected) or stable(state["StartedAt"])

    def _failures(self, states: list[dict[str, Any]]) -> tuple[int, str | None, str | None]:
        """(exits of the instance that exited most since treadle first saw it, how its last
        exit went, why one cannot start at all or will not run again)."""
        failed, last = 0, None
        for s in states:
            name, state = s["Name"].lstrip("/"), s["State"]
            if not state["Running"] and state.get("Error"):
                return failed, last, f"{name} cannot start: {state['Error']}"
            if (
                state["Status"] == "exited"
                and not state["Restarting"]
                and not self._restarts_again(s)
            ):
                policy = s["HostConfig"]["RestartPolicy"]["Name"]
                return (
                    failed,
                    last,
                    (
                        f"{name} exited with code {state['ExitCode']}, and its restart policy "
                        f"({policy}) does not start it again"
                    ),
                )
            restarts = self._restarted(s)
            if restarts > failed:
                failed = restarts
                last = f"{name} exited {restarts} times, the last time with exit code {state['ExitCode']}"
        return failed, last, None

    @staticmethod
    def _restarts_again(inspected: dict[str, Any]) -> bool:
        """Whether the engine will start an exited instance again (a spec's restart)."""
        policy = inspected["HostConfig"]["RestartPolicy"]
        if policy["Name"] in ("always", "unless-stopped"):
            return True
        if policy["Name"] != "on-failure" or inspected["State"]["ExitCode"] == 0:
            return False
        limit = policy.get("MaximumRetryCount") or 0
        return not limit or inspected["RestartCount"] < limit
