"""Marathon's event stream (GET /v2/events, server-sent events) as a signal to look again.

Marathon itself advises using its events only to invalidate what one knows (their order
is not guaranteed), so an event never carries state here: when one names an app that a
wait is about, the wait re-reads the app through the REST API at once (a deployment
ended, a task failed) or soon (a task started or passed a health check; one check then
covers a burst of such news).

The stream counts as live once Marathon's own `event_stream_attached` event has come
through; how it is followed, and given up, is treadle.providers.feed's.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError

from treadle.providers.feed import StreamRefused
from treadle.providers.marathon.http_feed import HttpFeed

ATTACHED = "event_stream_attached"
# The events that name the apps they are about; asked for by type, so that a busy
# cluster's other news (API calls, offers, group changes) never reaches treadle.
EVENT_TYPES = (
    ATTACHED,
    "deployment_success",
    "deployment_failed",
    "deployment_step_success",
    "deployment_step_failure",
    "status_update_event",
    "health_status_changed_event",
)
# After these a wait may be over: it checks at once. The others are progress.
DECISIVE_EVENTS = frozenset({"deployment_success", "deployment_failed"})
FAILED_TASK_STATES = frozenset(
    {"TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE"}
)


def server_sent_events(response: httpx.Response) -> Iterator[ServerSentEvent]:
    """The events of a text/event-stream answer as they arrive (Jetty's empty heartbeat
    lines and ':' comments carry none). An answer of another type is refused: asking
    again would only get it again."""
    try:
        # httpx-sse hands on an event with no data (an `event:` line alone); the SSE
        # standard drops it, and Marathon's every event carries JSON.
        yield from (event for event in EventSource(response).iter_sse() if event.data)
    except SSEError as e:
        raise StreamRefused(str(e)) from None


def apps_named(event: Mapping[str, Any]) -> set[str] | None:
    """The ids of the apps an event is about; None when it does not say (the deployment
    events of a Marathon before 1.4 carry only the deployment's id, and a deployment of no
    steps, such as a resize to the size an app has, names no app at all)."""
    if "appId" in event:
        return {str(event["appId"])}
    plan = event.get("plan")
    if not isinstance(plan, Mapping):
        return None
    steps = [*(plan.get("steps") or []), event.get("currentStep") or {}]
    # A step lists its actions; in the events of Marathon before 1.4 a step is an action.
    actions = [a for step in steps for a in (step.get("actions") or [step])]
    return {str(a["app"]) for a in actions if a.get("app")} or None


class EventStream(HttpFeed):
    """Follows Marathon's event stream; a wait's key is its app's id."""

    title = "Marathon's event stream"

    def _request(self) -> contextlib.AbstractContextManager[httpx.Response]:
        return self.client.stream("/v2/events", params={"event_type": EVENT_TYPES})

    def _read(self, response: httpx.Response) -> bool:
        attached = False
        for event in server_sent_events(response):
            if self.closed:
                break
            if event.event == ATTACHED:
                attached = True
                self._attached()
            else:
                self._news(event.event, event.data)
        return attached

    def _news(self, name: str, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        decisive = name in DECISIVE_EVENTS or event.get("taskStatus") in FAILED_TASK_STATES
        self._tell(apps_named(event), decisive=decisive)
