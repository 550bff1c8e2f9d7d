"""The Docker engine's events (`GET /events`, one JSON object per line) as a signal to
look again: a container started, died, changed health, ran out of memory or was removed.

A deploy's wait is about a server group (its key: the region and name treadle labels
its containers with), a run-job wait about a run (its key: the run's id, also a label);
an event names both through the container's labels, which the engine copies into it.
Only container events of those kinds are asked for, so a busy engine's other news never
reaches treadle. The engine flushes the answer's headers as soon as it has subscribed,
so the stream is live from then on. The stream has its own connection to the engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

from treadle.providers.engine import jobs, spec
from treadle.providers.engine.connection import connect
from treadle.providers.feed import Feed

# "health_status" matches "health_status: healthy" and "health_status: unhealthy".
EVENTS = ("start", "die", "oom", "destroy", "health_status")
FILTERS = {"type": ["container"], "event": list(EVENTS)}
# A swarm manager also tells of services (created, scaled, removed); the containers of
# their tasks are told of by the node that runs them, this one included.
SERVICE_EVENTS = ("create", "update", "remove")
SWARM_FILTERS = {"type": ["container", "service"], "event": [*EVENTS, *SERVICE_EVENTS]}
# How long closing waits for the thread to let go of its connection.
CLOSE_SECONDS = 2.0


def group_key(region: str, name: str) -> str:
    return f"{region} {name}"


def keys_of(event: Mapping[str, Any]) -> list[str]:
    """The waits an event is news for: its container's server group, or its job run; a
    service's server group, named by the service (spec.resource_name)."""
    labels = (event.get("Actor") or {}).get("Attributes") or {}
    if event.get("Type") == "service":
        region, separator, name = str(labels.get("name", "")).partition(spec.REGION_SEPARATOR)
        return [group_key(region, name) if separator else group_key(spec.DEFAULT_REGION, region)]
    keys = []
    if spec.LABEL_SERVER_GROUP in labels and spec.LABEL_REGION in labels:
        keys.append(group_key(labels[spec.LABEL_REGION], labels[spec.LABEL_SERVER_GROUP]))
    if jobs.LABEL_JOB_RUN in labels:
        keys.append(labels[jobs.LABEL_JOB_RUN])
    return keys


class EngineEvents(Feed):
    title = "the Docker engine's event stream"
    filters: ClassVar[dict[str, list[str]]] = FILTERS
    # A container that restarted counts as running once it has stayed up a second
    # (treadle.providers.engine.connection.stable), which no event tells; and the engine is
    # near and cheap to ask.
    safety_net = 2.0
    _events: Any = None

    @contextlib.contextmanager
    def _stream(self) -> Iterator[Iterable[dict[str, Any]]]:
        api = connect(console=self.console)
        try:
            events = self._events = api.events(filters=self.filters, decode=True)
            try:
                if self.closed:  # the stage ended while this connected
                    events.close()
                yield events
            finally:
                events.close()
                # The SDK's close() only closes the socket under the answer, which stays
                # open until its reader is released too: release it.
                response = getattr(events, "_response", None)
                if response is not None:
                    with contextlib.suppress(Exception):
                        response.close()
        finally:
            api.close()

    def _interrupt(self) -> None:
        if self._events is not None:
            with contextlib.suppress(Exception):
                self._events.close()

    def close(self) -> None:
        """Stop following, and let the thread close its connection before the stage ends
        (it is the stage's own, not shared)."""
        super().close()
        if self._thread is not None:
            self._thread.join(CLOSE_SECONDS)

    def _read(self, stream: Iterable[dict[str, Any]]) -> bool:
        self._attached()
        for event in stream:
            if self.closed:
                break
            if isinstance(event, dict):
                self._tell(keys_of(event), decisive=True)
        return True


class SwarmEvents(EngineEvents):
    """A swarm manager's events: its services', and the containers of this node. Tasks on
    other nodes bring no news, so waits still look every 2 s."""

    title = "the swarm manager's event stream"
    filters = SWARM_FILTERS
