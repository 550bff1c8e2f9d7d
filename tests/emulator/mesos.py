"""The Mesos side of a Metronome job run: one task on an agent, its sandbox files, and the
JSON the master (/mesos/...) and the agents (/agent/<id>/...) answer about it.

A task's life is a timeline fixed when its run starts (staged, running, done), cut short
by a stop. Everything here is a function of that timeline and the time asked about, so
an answer never depends on when the emulator last looked.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .state import AGENTS, Agent

FRAMEWORK_ID = "5b1c0a2e-8a0f-4c6e-9f51-7d8a3c2b1e40-0001"
FRAMEWORK_NAME = "metronome"
MASTER_ID = "5b1c0a2e-8a0f-4c6e-9f51-7d8a3c2b1e40"
# Mesos caps a files/read answer at 16 pages.
READ_CAP = 16 * 4096


@dataclass
class Script:
    """What a job's task does: prints (stdout revealed line by line while it runs),
    writes files into its sandbox when it ends, and exits."""

    stdout: str = ""
    stderr: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    exit_code: int = 0
    seconds: float | None = None  # how long it runs; None: the emulator's default


@dataclass
class MesosTask:
    id: str
    name: str
    agent: Agent
    cmd: str
    resources: dict[str, float]
    script: Script
    staged_at: float
    running_at: float
    done_at: float
    stopped_at: float | None = None
    container_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    pid: int = 0

    @property
    def ended_at(self) -> float:
        return min(self.done_at, self.stopped_at) if self.stopped_at is not None else self.done_at

    @property
    def killed(self) -> bool:
        return self.stopped_at is not None and self.stopped_at < self.done_at

    @property
    def directory(self) -> str:
        return (
            f"/var/lib/mesos/slave/slaves/{self.agent.slave_id}/frameworks/{FRAMEWORK_ID}"
            f"/executors/{self.id}/runs/{self.container_id}"
        )

    def ended(self, t: float) -> bool:
        return t >= self.ended_at

    def state(self, t: float) -> str:
        if self.ended(t):
            if self.killed:
                return "TASK_KILLED"
            return "TASK_FINISHED" if self.script.exit_code == 0 else "TASK_FAILED"
        return "TASK_RUNNING" if t >= self.running_at else "TASK_STAGING"

    def statuses(self, t: float) -> list[tuple[str, float]]:
        seen = [("TASK_STAGING", self.staged_at)]
        if self.running_at <= min(t, self.ended_at):
            seen.append(("TASK_RUNNING", self.running_at))
        if self.ended(t):
            seen.append((self.state(t), self.ended_at))
        return seen

    # -- sandbox ---------------------------------------------------------------------

    def files(self, t: float, clock: Clock) -> dict[str, bytes]:
        """The sandbox at time t."""
        until = min(t, self.ended_at)
        stdout = self._printed(until)
        stderr = self._executor_log(t, clock)
        files = {"stdout": stdout.encode(), "stderr": stderr.encode()}
        if self.ended(t) and not self.killed:
            files.update(self.script.files)
        return files

    def _printed(self, until: float) -> str:
        """Stdout lines appear evenly while the task runs, all of them once it is done."""
        if until >= self.done_at:
            return self.script.stdout
        if until < self.running_at:
            return ""
        lines = self.script.stdout.splitlines(keepends=True)
        share = (until - self.running_at) / (self.done_at - self.running_at)
        return "".join(lines[: int(len(lines) * share)])

    def _executor_log(self, t: float, clock: Clock) -> str:
        """What the Mesos command executor logs (glog, to stderr) around the task's own."""

        def line(at: float, source: str, text: str) -> str:
            moment = datetime.fromtimestamp(clock.wall(at), tz=UTC)
            return f"I{moment:%m%d %H:%M:%S.%f} {self.pid:5d} {source}] {text}\n"

        log = line(self.staged_at, "executor.cpp:190", "Received SUBSCRIBED event")
        log += line(self.staged_at, "executor.cpp:194", f"Subscribed executor on {self.agent.host}")
        log += line(self.staged_at, "executor.cpp:190", "Received LAUNCH event")
        log += line(self.staged_at, "executor.cpp:722", f"Starting task {self.id}")
        if min(t, self.ended_at) >= self.running_at:
            log += line(self.running_at, "executor.cpp:740", f"Forked command at {self.pid + 1}")
        if not self.ended(t):
            return log
        if self.killed:
            log += line(
                self.ended_at,
                "executor.cpp:835",
                f"Received kill for task {self.id} with grace period of 3secs",
            )
            ending = "Command terminated with signal Terminated"
        else:
            log += self.script.stderr
            ending = f"Command exited with status {self.script.exit_code}"
        return log + line(self.ended_at, "executor.cpp:1041", f"{ending} (pid: {self.pid + 1})")

    # -- JSON ------------------------------------------------------------------------

    def master_json(self, t: float, clock: Clock) -> dict[str, Any]:
        """As the master's /state and /tasks list it (mesos src/common/http.cpp)."""
        return {
            "id": self.id,
            "name": self.name,
            "framework_id": FRAMEWORK_ID,
            "executor_id": "",  # a command task: the agent names its executor after the task
            "slave_id": self.agent.slave_id,
            "state": self.state(t),
            "resources": {**self.resources, "gpus": 0.0, "ports": "[]"},
            "role": "*",
            "statuses": [
                {
                    "state": state,
                    "timestamp": clock.wall(at),
                    "container_status": {
                        "container_id": {"value": self.container_id},
                        "network_infos": [
                            {"ip_addresses": [{"protocol": "IPv4", "ip_address": self.agent.ip}]}
                        ],
                    },
                }
                for state, at in self.statuses(t)
            ],
            "labels": [],
        }

    def executor_json(self, t: float, clock: Clock) -> dict[str, Any]:
        """As an agent's /state lists its executor (mesos src/slave/http.cpp)."""
        task = {**self.master_json(t, clock), "executor_id": self.id}
        done = self.ended(t)
        return {
            "id": self.id,
            "name": f"Command Executor (Task: {self.id}) (Command: sh -c '{self.cmd}')",
            "source": self.id,
            "container": self.container_id,
            "directory": self.directory,
            "resources": self.resources,
            "tasks": [] if done else [task],
            "queued_tasks": [],
            "completed_tasks": [task] if done else [],
        }


class Clock:
    """Monotonic time for the timelines, wall time for what the answers show."""

    def __init__(self, now: float, wall: float) -> None:
        self._offset = wall - now

    def wall(self, t: float) -> float:
        return round(t + self._offset, 6)

    def metronome(self, t: float) -> str:
        """Metronome's date format: 2016-07-15T13:02:59.735+0000."""
        moment = datetime.fromtimestamp(self.wall(t), tz=UTC)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def master_state(tasks: list[MesosTask], t: float, clock: Clock, url: str) -> dict[str, Any]:
    """GET /mesos/master/state, trimmed to what a Metronome-only cluster shows."""
    launched = [task for task in tasks if task.staged_at <= t]
    return {
        "version": "1.12.0",
        "id": MASTER_ID,
        "pid": f"master@{url.split('://', 1)[-1]}",
        "hostname": "master.example",
        "activated_slaves": len(AGENTS),
        "slaves": [
            {"id": a.slave_id, "hostname": a.host, "pid": f"slave(1)@{a.ip}:5051", "active": True}
            for a in AGENTS
        ],
        "frameworks": [
            {
                "id": FRAMEWORK_ID,
                "name": FRAMEWORK_NAME,
                "active": True,
                "tasks": [x.master_json(t, clock) for x in launched if not x.ended(t)],
                "unreachable_tasks": [],
                "completed_tasks": [x.master_json(t, clock) for x in launched if x.ended(t)],
                "executors": [],
            }
        ],
        "completed_frameworks": [],
        "unregistered_frameworks": [],
    }


def agent_state(agent: Agent, tasks: list[MesosTask], t: float, clock: Clock) -> dict[str, Any]:
    """GET /agent/<id>/state: the agent's executors, running and completed."""
    here = [x for x in tasks if x.agent == agent and x.staged_at <= t]
    return {
        "id": agent.slave_id,
        "hostname": agent.host,
        "pid": f"slave(1)@{agent.ip}:5051",
        "frameworks": [
            {
                "id": FRAMEWORK_ID,
                "name": FRAMEWORK_NAME,
                "user": "root",
                "executors": [x.executor_json(t, clock) for x in here if not x.ended(t)],
                "completed_executors": [x.executor_json(t, clock) for x in here if x.ended(t)],
            }
        ]
        if here
        else [],
        "completed_frameworks": [],
    }


def read_answer(data: bytes, offset: int, length: int | None) -> bytes:
    """A files/read answer: {"data", "offset"}, the bytes raw inside the JSON string as
    Mesos writes them (a UTF-8 character may be cut at either end)."""
    if offset == -1:
        chunk, offset = b"", len(data)
    else:
        end = offset + min(READ_CAP, length if length is not None else READ_CAP)
        chunk = data[offset:end]
    text = json.dumps(chunk.decode("utf-8", "surrogateescape"), ensure_ascii=False)
    return (
        b'{"data":'
        + text.encode("utf-8", "surrogateescape")
        + b',"offset":'
        + str(offset).encode()
        + b"}"
    )
