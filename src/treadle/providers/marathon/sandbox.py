"""A Mesos task's sandbox, read through DC/OS Admin Router: the task's agent from the master,
its executor's directory from that agent (`/agent/<id>/state`), then the files in it
(`/agent/<id>/files/read` and `/files/download`).

The master says where a task runs on two routes, asked in this order:
- `/mesos/tasks?task_id=` (the master's /tasks): one task, a small answer;
- `/mesos/master/state`: every framework (and under completed_frameworks those torn
  down) with its tasks, unreachable_tasks and completed_tasks. Large on a large cluster,
  so only asked when the first route answers 404 (not served: an older DC/OS, a proxy
  that does not route it), refuses, fails, or does not list the task (a master that
  ignores task_id answers a page of other tasks).
A route that answered 404 is not asked again, and where a task's sandbox is, once found,
is kept. When neither route locates the task, the error names what each one answered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from treadle.errors import ProviderError, ProviderUnavailable
from treadle.providers.marathon.http import DcosClient

# What the Mesos command executor (and the Docker executor) logs to the sandbox's stderr
# when the task's process ends; Mesos' task states carry no exit status.
_EXECUTOR_EXIT = re.compile(
    r"(?:Command|Container) (?:exited with status (\d+)|terminated with signal [^(\n]*)"
)
STDERR_TAIL_BYTES = 8192
TASKS_ROUTE = "/mesos/tasks"
STATE_ROUTE = "/mesos/master/state"
# Bytes asked for per files/read: what Mesos answers at most on 4 KiB pages (16 pages).
# A shorter answer is the end of the file, so a read that got everything stops there.
READ_LENGTH = 16 * 4096

T = TypeVar("T")


class SandboxUnavailable(Exception):
    """The sandbox cannot be read: the task is not (yet) known, or DC/OS refused."""


@dataclass(frozen=True)
class Location:
    agent_id: str
    directory: str


@dataclass(frozen=True)
class Ending:
    """How a task ended, in Mesos' words and its executor's."""

    state: str
    exit_code: int | None
    # The executor's line on the process's end: "Command exited with status 3".
    reason: str | None

    def describe(self) -> str:
        return f"{self.reason} ({self.state})" if self.reason else self.state


class Sandbox:
    def __init__(self, client: DcosClient) -> None:
        self.client = client
        self._locations: dict[str, Location] = {}
        # Routes to the master that answered 404: not there, so not asked again.
        self._missing: set[str] = set()

    def read(self, task_id: str, name: str, offset: int) -> tuple[str, int]:
        """A file's text from byte `offset` on, and the offset after it."""
        where = self._locate(task_id)
        data = b""
        while True:
            chunk = self._read_chunk(where, name, offset + len(data))
            data += chunk
            if len(chunk) < READ_LENGTH:
                break
        text, used = _whole_characters(data)
        return text, offset + used

    def download(self, task_id: str, name: str) -> bytes | None:
        where = self._locate(task_id)
        path = f"{where.directory}/{name}"
        return self._call(
            lambda: self.client.download(f"/agent/{where.agent_id}/files/download", {"path": path})
        )

    def ending(self, task_id: str) -> Ending:
        """The task's final state, and its exit status where the executor logged it."""
        task = self._task(task_id)
        stderr = self._tail(task_id, "stderr")
        found = list(_EXECUTOR_EXIT.finditer(stderr))
        if not found:
            return Ending(str(task.get("state")), None, None)
        last = found[-1]
        return Ending(str(task.get("state")), int(last[1]) if last[1] else None, last[0].strip())

    def _tail(self, task_id: str, name: str) -> str:
        where = self._locate(task_id)
        size = self._size(where, name)
        return self.read(task_id, name, max(0, size - STDERR_TAIL_BYTES))[0] if size else ""

    def _task(self, task_id: str) -> dict[str, Any]:
        """The task as the master lists it, from the first route that lists it."""
        tried = []
        for route, params, find in (
            (TASKS_ROUTE, {"task_id": task_id}, task_in_tasks),
            (STATE_ROUTE, None, task_in_state),
        ):
            if route in self._missing:
                tried.append(f"GET {route} is not served (404)")
                continue
            try:
                answer = self._json(route, params)
            except SandboxUnavailable as e:
                tried.append(str(e))
                continue
            if answer is None:
                self._missing.add(route)
                tried.append(f"GET {route} is not served (404)")
                continue
            task = find(answer, task_id)
            if task is not None:
                return task
            tried.append(f"GET {route} does not list it")
        raise SandboxUnavailable(f"cannot locate Mesos task {task_id}: {'; '.join(tried)}")

    def _json(self, route: str, params: Mapping[str, str] | None) -> Any:
        """A route's JSON answer; None when it answered 404."""
        body = self._call(lambda: self.client.download(route, params))
        if body is None:
            return None
        try:
            return json.loads(body)
        except ValueError:
            raise SandboxUnavailable(f"GET {route} answered something not JSON") from None

    def _locate(self, task_id: str) -> Location:
        known = self._locations.get(task_id)
        if known is not None:
            return known
        task = self._task(task_id)
        agent_id = str(task.get("slave_id") or "")
        # The command executor that Metronome's tasks run under takes the task's id.
        executor_id = task.get("executor_id") or task_id
        state = self._call(lambda: self.client.get(f"/agent/{agent_id}/state"))
        directory = executor_directory(state or {}, str(task.get("framework_id")), executor_id)
        if directory is None:
            raise SandboxUnavailable(
                f"agent {agent_id} lists no executor {executor_id} of task {task_id}"
            )
        self._locations[task_id] = Location(agent_id, directory)
        return self._locations[task_id]

    def _size(self, where: Location, name: str) -> int:
        # offset=-1 asks Mesos for the file's size only.
        answer = self._files_read(where, name, {"offset": -1})
        return int(answer.get("offset") or 0) if answer else 0

    def _read_chunk(self, where: Location, name: str, offset: int) -> bytes:
        answer = self._files_read(where, name, {"offset": offset, "length": READ_LENGTH})
        if not answer:
            return b""
        # Mesos puts the file's raw bytes in the JSON string; `surrogateescape` keeps the
        # bytes of a character cut at the end of a chunk as they are.
        data: str = answer.get("data") or ""
        return data.encode("utf-8", "surrogateescape")

    def _files_read(
        self, where: Location, name: str, window: dict[str, int]
    ) -> dict[str, Any] | None:
        params = {"path": f"{where.directory}/{name}", **window}
        body = self._call(
            lambda: self.client.download(f"/agent/{where.agent_id}/files/read", params)
        )
        if body is None:  # not written yet
            return None
        try:
            answer = json.loads(body.decode("utf-8", "surrogateescape"))
        except ValueError:
            raise SandboxUnavailable(
                f"agent {where.agent_id} answered files/read with something not JSON"
            ) from None
        return answer if isinstance(answer, dict) else None

    def _call(self, call: Callable[[], T]) -> T:
        """A DC/OS answer; its errors mean this sandbox cannot be read, not that the
        cluster is down: Metronome answered all along."""
        try:
            return call()
        except (ProviderError, ProviderUnavailable) as e:
            raise SandboxUnavailable(str(e)) from None


def task_in_tasks(answer: Any, task_id: str) -> dict[str, Any] | None:
    """The task in a /tasks answer, {"tasks": [...]}."""
    tasks = answer.get("tasks") if isinstance(answer, dict) else None
    for task in tasks or []:
        if task.get("id") == task_id:
            return dict(task)
    return None


def task_in_state(answer: Any, task_id: str) -> dict[str, Any] | None:
    """The task in the master's /state, under any framework, running or not."""
    if not isinstance(answer, dict):
        return None
    for framework in [
        *(answer.get("frameworks") or []),
        *(answer.get("completed_frameworks") or []),
    ]:
        for key in ("tasks", "unreachable_tasks", "completed_tasks"):
            found = task_in_tasks({"tasks": framework.get(key)}, task_id)
            if found is not None:
                return found
    return None


def executor_directory(
    agent_state: Mapping[str, Any], framework_id: str, executor_id: str
) -> str | None:
    """The sandbox directory of an executor, running or completed, from an agent's /state."""
    frameworks = [
        *(agent_state.get("frameworks") or []),
        *(agent_state.get("completed_frameworks") or []),
    ]
    for framework in frameworks:
        if framework.get("id") != framework_id:
            continue
        for executor in [
            *(framework.get("executors") or []),
            *(framework.get("completed_executors") or []),
        ]:
            if executor.get("id") == executor_id and executor.get("directory"):
                return str(executor["directory"])
    return None


def _whole_characters(data: bytes) -> tuple[str, int]:
    """The text of `data`, less a UTF-8 character cut at its end (read again next time),
    and how many bytes that text took."""
    for cut in range(min(3, len(data)) + 1):
        try:
            return data[: len(data) - cut].decode("utf-8"), len(data) - cut
        except UnicodeDecodeError as e:
            if e.reason != "unexpected end of data":
                break
    return data.decode("utf-8", "replace"), len(data)
