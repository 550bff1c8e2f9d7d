"""Marathon's event stream (GET /v2/events, server-sent events) as a signal to look again.

Marathon itself advises using its events only to invalidate what one knows (their order
is not guaranteed), so an event never carries state here: when one names an app that a
wait is about, the wait re-reads the app through the REST API at once (a deployment
ended, a task failed) or soon (a task started or passed a health check; one check then
covers a burst of such news).

A daemon thread follows the stream, through the same credentials and TLS as every other
request, from the first wait to the end of the stage. The stream counts as live once
Marathon's own `event_stream_attached` event has come through, so a proxy that buffers
the stream never passes for a live one. When the stream is refused (401, 403, 404, 405)
or keeps breaking, the thread gives up quietly and the waits poll as they would without
it.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx

from treadle.console import Console
from treadle.errors import TreadleError
from treadle.providers.marathon.client import MarathonClient
from treadle.waiting import Wakeup

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
# Answers that another attempt would only repeat.
REFUSED = frozenset({401, 403, 404, 405})
# Attempts in a row that end before the stream attaches, before falling back for good.
ATTEMPTS = 5


def server_sent_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event type, data) of each event of a text/event-stream, read line by line. A
    blank line ends an event; lines starting with ':' and Jetty's empty heartbeats are
    skipped."""
    name, data = "", []
    for line in lines:
        if not line:
            if data:
                yield name or "message", "\n".join(data)
            name, data = "", []
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)


def apps_named(event: Mapping[str, Any]) -> set[str] | None:
    """The ids of the apps an event is about; None when it does not say (the deployment
    events of a Marathon before 1.4 carry only the deployment's id)."""
    if "appId" in event:
        return {str(event["appId"])}
    plan = event.get("plan")
    if not isinstance(plan, Mapping):
        return None
    steps = [*(plan.get("steps") or []), event.get("currentStep") or {}]
    # A step lists its actions; in the events of Marathon before 1.4 a step is an action.
    actions = [a for step in steps for a in (step.get("actions") or [step])]
    return {str(a["app"]) for a in actions if a.get("app")}


class EventStream:
    """Follows Marathon's event stream and brings each wait the news of its app."""

    def __init__(self, client: MarathonClient, console: Console) -> None:
        self.client = client
        self.console = console
        self._lock = threading.Lock()
        self._waits: dict[str, set[Wakeup]] = {}
        self._live = False
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @contextlib.contextmanager
    def watching(self, app_id: str) -> Iterator[Wakeup]:
        """A wakeup that brings news of `app_id` while inside; the stream is followed
        from the first one on."""
        wakeup = Wakeup()
        with self._lock:
            wakeup.live = self._live
            self._waits.setdefault(app_id, set()).add(wakeup)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._follow, name="marathon-events", daemon=True
                )
                self._thread.start()
        try:
            yield wakeup
        finally:
            with self._lock:
                waits = self._waits[app_id]
                waits.discard(wakeup)
                if not waits:
                    del self._waits[app_id]

    def close(self) -> None:
        self._closed.set()

    def _follow(self) -> None:
        why = self._follow_until_refused()
        self._set_live(False)
        if why is not None and not self._closed.is_set():
            self.console.info(f"Marathon's event stream is not available ({why}): polling instead")

    def _follow_until_refused(self) -> str | None:
        """Follow the stream, reconnecting with backoff; why it was given up, or None
        once closed."""
        failures = 0
        while not self._closed.is_set():
            why, attached = "", False
            try:
                with self.client.stream(
                    "/v2/events", params={"event_type": EVENT_TYPES}
                ) as response:
                    why = f"{response.status_code} {response.reason_phrase}"
                    if response.status_code in REFUSED:
                        return why
                    if response.status_code == 200:
                        attached = self._read(response.iter_lines())
            except (httpx.HTTPError, TreadleError) as e:  # TreadleError: a failed login
                why = str(e) or type(e).__name__
            except RuntimeError:  # the session was closed under the stream: the stage ended
                return None
            self._set_live(False)
            failures = 1 if attached else failures + 1
            if failures >= ATTEMPTS:
                return why
            self._closed.wait(min(8.0, 0.5 * 2 ** (failures - 1)) * random.uniform(0.75, 1.25))
        return None

    def _read(self, lines: Iterable[str]) -> bool:
        """Pass each event on until the stream ends or is closed; whether it attached."""
        attached = False
        for name, data in server_sent_events(lines):
            if self._closed.is_set():
                break
            if name == ATTACHED:
                attached = True
                self._set_live(True)
            else:
                self._tell(name, data)
        return attached

    def _set_live(self, live: bool) -> None:
        with self._lock:
            self._live = live
            waits = [w for ws in self._waits.values() for w in ws]
        for wakeup in waits:
            wakeup.live = live
            if live:
                # What happened before the stream (re)attached is looked at too.
                wakeup.wake()

    def _tell(self, name: str, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            return
        if not isinstance(event, dict):
            return
        named = apps_named(event)
        with self._lock:
            if named is None:
                waits = [w for ws in self._waits.values() for w in ws]
            else:
                waits = [w for app in named for w in self._waits.get(app, ())]
        decisive = name in DECISIVE_EVENTS or event.get("taskStatus") in FAILED_TASK_STATES
        for wakeup in waits:
            if decisive:
                wakeup.wake()
            else:
                wakeup.nudge()
