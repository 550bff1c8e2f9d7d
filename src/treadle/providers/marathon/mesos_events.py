"""The Mesos master's event stream (the v1 operator API's SUBSCRIBE, `POST /mesos/api/v1`
through Admin Router) as a signal to look at a job run again.

Metronome has no event stream of its own, but every state change of its tasks passes
through the Mesos master, which tells its subscribers: TASK_ADDED when a task is
launched, TASK_UPDATED at each change of state after that. A run-job wait's key is the
run's id, which every Mesos task id Metronome gives the run contains
(`<job>_<run id>.<uuid>`); the launch of such a task (the run's log can be read from
then on) and its end make the wait read the run from Metronome at once.

The stream is RecordIO: each event is its length in bytes, a newline, then its JSON. The
first event, SUBSCRIBED, carries a snapshot of the whole cluster's state (every task,
framework and agent; megabytes on a big cluster), of no use here since the run is read
from Metronome once the stream is live. It is counted past unread, never kept or parsed;
of the events after it, only those whose bytes name a watched run are parsed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx

from treadle.providers.marathon.http_feed import HttpFeed

PATH = "/mesos/api/v1"
SUBSCRIBE = {"type": "SUBSCRIBE"}
# Events longer than this (only the snapshot ever is) are skipped unread.
EVENT_LIMIT = 1 << 20
# A record's length is a decimal number: this many bytes without a newline is garbage.
LONGEST_HEADER = 20
NOT_RECORDIO = "the answer is not a RecordIO event stream"
# A task's steps towards running change nothing Metronome shows of its run (ACTIVE from
# the launch on): only its launch and its end are news.
ON_THE_WAY = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"})


class RecordIO:
    """The records of a RecordIO stream, read from its chunks as they arrive."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def records(self, limit: int) -> Iterator[bytes | None]:
        """Each record, or None for one longer than `limit`, skipped without being kept.
        ValueError when the stream is not RecordIO."""
        while True:
            while (end := self._buffer.find(b"\n")) < 0:
                if len(self._buffer) > LONGEST_HEADER:
                    raise ValueError(NOT_RECORDIO)
                if not self._more():
                    return
            header = bytes(self._buffer[:end])
            if not header.strip().isdigit():
                raise ValueError(NOT_RECORDIO)
            length = int(header)
            del self._buffer[: end + 1]
            if length > limit:
                if not self._skip(length):
                    return
                yield None
                continue
            while len(self._buffer) < length:
                if not self._more():
                    return
            record = bytes(self._buffer[:length])
            del self._buffer[:length]
            yield record

    def _more(self) -> bool:
        chunk = next(self._chunks, None)
        if chunk is None:
            return False
        self._buffer += chunk
        return True

    def _skip(self, length: int) -> bool:
        """Past `length` bytes, keeping none of them; False when the stream ends first."""
        while len(self._buffer) < length:
            length -= len(self._buffer)
            self._buffer.clear()
            if not self._more():
                return False
        del self._buffer[:length]
        return True


def task_news(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(task id, state) of an event worth a look at a run: a task launched (TASK_ADDED),
    or one that stopped running (a TASK_UPDATED to any state but a step towards
    running). None for any other event."""
    kind = event.get("type")
    if kind == "TASK_ADDED":
        task = (event.get("task_added") or {}).get("task") or {}
        return str((task.get("task_id") or {}).get("value", "")), str(task.get("state", ""))
    if kind == "TASK_UPDATED":
        updated = event.get("task_updated") or {}
        status = updated.get("status") or {}
        state = str(updated.get("state") or status.get("state", ""))
        if state in ON_THE_WAY:
            return None
        return str((status.get("task_id") or {}).get("value", "")), state
    return None


class TaskEvents(HttpFeed):
    """Follows the Mesos master's events; a wait's key is a string its tasks' ids
    contain (a Metronome run's id)."""

    title = "the Mesos master's event stream"

    def _request(self) -> contextlib.AbstractContextManager[httpx.Response]:
        return self.client.stream(PATH, method="POST", json=SUBSCRIBE, accept="application/json")

    def _read(self, response: httpx.Response) -> bool:
        attached = False
        for record in RecordIO(response.iter_bytes()).records(EVENT_LIMIT):
            if self.closed:
                break
            if not attached:
                # SUBSCRIBED: the answer to the subscription always starts with it.
                attached = True
                self._attached()
            elif record is not None:
                self._news(record)
        return attached

    def _news(self, record: bytes) -> None:
        keys = [key for key in self.keys() if key.encode() in record]
        if not keys:
            return
        try:
            event = json.loads(record)
        except ValueError:
            return
        news = task_news(event) if isinstance(event, dict) else None
        if news is not None:
            self._tell([key for key in keys if key in news[0]], decisive=True)
