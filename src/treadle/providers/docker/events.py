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
from typing import Any

from treadle.feed import Feed
from treadle.providers.docker import jobs, spec
from treadle.providers.docker.engine import connect

# "health_status" matches "health_status: healthy" and "health_status: unhealthy".
EVENTS = ("start", "die", "oom", "destroy", "health_status")
FILTERS = {"type": ["container"], "event": list(EVENTS)}


def group_key(region: str, name: str) -> str:
    return f"{region} {name}"


def keys_of(event: Mapping[str, Any]) -> list[str]:
    """The waits an event is news for: its container's server group, or its job run."""
    labels = (event.get("Actor") or {}).get("Attributes") or {}
    keys = []
    if spec.LABEL_SERVER_GROUP in labels and spec.LABEL_REGION in labels:
        keys.append(group_key(labels[spec.LABEL_REGION], labels[spec.LABEL_SERVER_GROUP]))
    if jobs.LABEL_JOB_RUN in labels:
        keys.append(labels[jobs.LABEL_JOB_RUN])
    return keys


class EngineEvents(Feed):
    title = "the Docker engine's event stream"
    # A container that restarted counts as running once it has stayed up a second
    # (treadle.providers.docker.engine.stable), which no event tells; and the engine is
    # near and cheap to ask.
    safety_net = 2.0
    _events: Any = None

    @contextlib.contextmanager
    def _stream(self) -> Iterator[Iterable[dict[str, Any]]]:
        api = connect()
        try:
            self._events = api.events(filters=FILTERS, decode=True)
            try:
                yield self._events
            finally:
                self._events.close()
        finally:
            api.close()

    def _interrupt(self) -> None:
        if self._events is not None:
            with contextlib.suppress(Exception):
                self._events.close()

    def _read(self, stream: Iterable[dict[str, Any]]) -> bool:
        self._attached()
        for event in stream:
            if self.closed:
                break
            if isinstance(event, dict):
                self._tell(keys_of(event), decisive=True)
        return True
