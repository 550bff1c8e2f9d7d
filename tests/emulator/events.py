"""Marathon's event stream (GET /v2/events): the events the scheduler emits, shaped as
Marathon sends them (docs/docs/event-bus.md; events.txt in the RAML examples), and the
bus that hands them to every attached stream as server-sent events.

An event is rendered when it happens, with the time it happened at: the scheduler state
replays wake-ups at their own moments, so a deployment that finished at t is announced
with t even when the replay runs a little later.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from .messages import Stream

if TYPE_CHECKING:
    from .state import Deployment, MarathonState, Task

Event = dict[str, Any]

# The headers Marathon's event stream answers with.
SSE_HEADERS = {"Cache-Control": "no-cache, no-store, must-revalidate"}
SSE_TYPE = "text/event-stream;charset=utf-8"


def _plan(deployment: Deployment) -> dict[str, Any]:
    """A deployment plan as events carry it (Marathon's raml.DeploymentPlan)."""
    return {
        "id": deployment.id,
        "steps": [_step(deployment, action) for action in deployment.actions],
        "version": deployment.version,
    }


def _step(deployment: Deployment, action: str) -> dict[str, Any]:
    return {"actions": [{"action": action, "app": deployment.app_id}]}


def _last_step(deployment: Deployment) -> dict[str, Any]:
    # Every step but the last completes at once (see render.deployment_json).
    return _step(deployment, deployment.actions[-1]) if deployment.actions else {"actions": []}


def deployment_step(
    state: MarathonState, deployment: Deployment, t: float, event_type: str
) -> Event:
    """deployment_info (a step began) or deployment_step_success (it ended)."""
    return {
        "plan": _plan(deployment),
        "currentStep": _last_step(deployment),
        "eventType": event_type,
        "timestamp": state.timestamp(t),
    }


def deployment_ended(
    state: MarathonState, deployment: Deployment, t: float, succeeded: bool
) -> Event:
    """deployment_success, or deployment_failed for one cancelled by a forced change."""
    event: Event = {"id": deployment.id, "plan": _plan(deployment)}
    event["eventType"] = "deployment_success" if succeeded else "deployment_failed"
    event["timestamp"] = state.timestamp(t)
    if not succeeded:
        event["reason"] = "The deployment was cancelled"
    return event


def status_update(
    state: MarathonState, task: Task, status: str, t: float, message: str = ""
) -> Event:
    # Key for key the status_update_event of events.txt.
    return {
        "slaveId": task.agent.slave_id,
        "taskId": task.id,
        "taskStatus": status,
        "message": message,
        "appId": task.app_id,
        "host": task.agent.host,
        "ports": list(task.ports),
        "version": task.version,
        "eventType": "status_update_event",
        "timestamp": state.timestamp(t),
    }


def health_status_changed(state: MarathonState, task: Task, alive: bool, t: float) -> Event:
    # Task ids here are Marathon's legacy ones, which double as instance ids.
    return {
        "appId": task.app_id,
        "instanceId": task.id,
        "version": task.version,
        "alive": alive,
        "eventType": "health_status_changed_event",
        "timestamp": state.timestamp(t),
    }


def stream_attached(remote_address: str, timestamp: str) -> Event:
    return {
        "remoteAddress": remote_address,
        "eventType": "event_stream_attached",
        "timestamp": timestamp,
    }


def frame(event: Event) -> bytes:
    """One server-sent event as Jetty's EventSource writes it."""
    return f"event: {event['eventType']}\ndata: {json.dumps(event)}\n\n".encode()


class EventBus:
    """The attached event streams, each with the event types it asked for (none: all)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._streams: list[tuple[Stream, Collection[str]]] = []

    def attach(self, stream: Stream, event_types: Collection[str]) -> None:
        with self._lock:
            self._streams.append((stream, frozenset(event_types)))

    @property
    def attached(self) -> bool:
        with self._lock:
            self._streams = [(s, types) for s, types in self._streams if not s.closed]
            return bool(self._streams)

    def publish(self, events: list[Event]) -> None:
        if not events:
            return
        with self._lock:
            streams = [(s, types) for s, types in self._streams if not s.closed]
            self._streams = streams
        for event in events:
            data = frame(event)
            for stream, types in streams:
                if not types or event["eventType"] in types:
                    stream.send(data)
