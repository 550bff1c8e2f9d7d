"""The Mesos side of a Metronome job run: one task on an agent, its sandbox files, and the
JSON the master (/mesos/...) and the agents (/agent/<id>/...) answer about it, including
the master's v1 operator API event stream (SUBSCRIBE).

A task's life is a timeline fixed when its run starts (staged, running, done), cut short
by a stop. Everything here is a function of that timeline and the time asked about, so
an answer never depends on when the emulator last looked.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .state import AGENTS, Agent

FRAMEWORK_ID = "5b1c0a2e-8a0f-4c6e-9f51-7d8a3c2b1e40-0001"
FRAMEWORK_NAME = "metronome"
MASTER_ID = "5b1c0a2e-8a0f-4c6e-9f51-7d8a3c2b1e40"
# On DC/OS Marathon registers first, Metronome second.
MARATHON_FRAMEWORK_ID = f"{MASTER_ID}-0000"
MESOS_VERSION = "1.12.0"
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
    framework_id: str = FRAMEWORK_ID

    @property
    def ended_at(self) -> float:
        return min(self.done_at, self.stopped_at) if self.stopped_at is not None else self.done_at

    @property
    def killed(self) -> bool:
        return self.stopped_at is not None and self.stopped_at < self.done_at

    @property
    def directory(self) -> str:
        return (
            f"/var/lib/mesos/slave/slaves/{self.agent.slave_id}/frameworks/{self.framework_id}"
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
        else:
            log += self.script.stderr
        return log + line(
            self.ended_at, "executor.cpp:1041", f"{self._ending()} (pid: {self.pid + 1})"
        )

    def _ending(self) -> str:
        """How the command executor words the end (src/launcher/executor.cpp: "Command "
        and WSTRINGIFY of the wait status), in its log and in the terminal status."""
        if self.killed:
            return "Command terminated with signal Terminated"
        return f"Command exited with status {self.script.exit_code}"

    # -- JSON ------------------------------------------------------------------------

    def master_json(self, t: float, clock: Clock) -> dict[str, Any]:
        """As the master's /state and /tasks list it (mesos src/common/http.cpp)."""
        return {
            "id": self.id,
            "name": self.name,
            "framework_id": self.framework_id,
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

    def v1_json(self, t: float, clock: Clock) -> dict[str, Any]:
        """A v1 Task (mesos.proto) as the operator API lists it at time t."""
        # TASK_STAGING is the state the master creates a task in, never a status update.
        updates = [(s, at) for s, at in self.statuses(t) if s != "TASK_STAGING"]
        return self._v1(self.state(t), [self.v1_status(s, at, clock) for s, at in updates])

    def v1_added(self) -> dict[str, Any]:
        """The v1 Task of TASK_ADDED: as the master creates it from the TaskInfo
        (protobuf::createTask), staging, before any status update."""
        return self._v1("TASK_STAGING", [])

    def _v1(self, state: str, statuses: list[dict[str, Any]]) -> dict[str, Any]:
        task: dict[str, Any] = {
            "name": self.name,
            "task_id": {"value": self.id},
            "framework_id": {"value": self.framework_id},
            # No executor_id: a command task's executor is the agent's, named after it.
            "agent_id": {"value": self.agent.slave_id},
            "state": state,
            "resources": v1_resources(self.resources, allocated=True),
        }
        # Mesos' protobuf-to-JSON leaves out empty repeated fields and unset optional
        # ones: a task without status updates has neither statuses nor status_update_*.
        if statuses:
            task["statuses"] = statuses
            task["status_update_state"] = statuses[-1]["state"]
            task["status_update_uuid"] = statuses[-1]["uuid"]
        return task

    def v1_status(self, state: str, at: float, clock: Clock) -> dict[str, Any]:
        """A v1 TaskStatus as the command executor sends it and the agent forwards it
        (the agent adds agent_id and container_status)."""
        status: dict[str, Any] = {
            "task_id": {"value": self.id},
            "state": state,
            "source": "SOURCE_EXECUTOR",
            "agent_id": {"value": self.agent.slave_id},
            "executor_id": {"value": self.id},
            "timestamp": clock.wall(at),
            "uuid": _status_uuid(self.id, state),
            "container_status": {
                "container_id": {"value": self.container_id},
                "network_infos": [
                    {"ip_addresses": [{"protocol": "IPv4", "ip_address": self.agent.ip}]}
                ],
            },
        }
        if state in TERMINAL_STATES:
            status["message"] = self._ending()
        return status

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


def master_state(
    tasks: list[MesosTask], t: float, clock: Clock, url: str, registered: float
) -> dict[str, Any]:
    """GET /mesos/master/state (the master's ReadOnlyHandler::state): its agents and its
    frameworks, each listing its tasks (running, unreachable, completed), less the flags
    and build details. Metronome is the one framework here; `completed_frameworks` holds
    the frameworks torn down, none on a healthy cluster."""
    launched = [task for task in tasks if task.staged_at <= t]
    running = [x for x in launched if not x.ended(t)]
    used = {
        name: sum(x.resources.get(name, 0.0) for x in running) for name in ("cpus", "mem", "disk")
    }
    host = url.split("://", 1)[-1]
    wall = clock.wall(registered)
    return {
        "version": MESOS_VERSION,
        "build_date": "2020-06-01 00:00:00",
        "build_time": 1590969600.0,
        "build_user": "root",
        "start_time": wall,
        "elected_time": wall,
        "id": MASTER_ID,
        "pid": f"master@{host}",
        "hostname": "master.example",
        "capabilities": ["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"],
        "activated_slaves": len(AGENTS),
        "deactivated_slaves": 0,
        "unreachable_slaves": 0,
        "leader": f"master@{host}",
        "leader_info": {"id": MASTER_ID, "pid": f"master@{host}", "hostname": "master.example"},
        "slaves": [
            {
                "id": a.slave_id,
                "hostname": a.host,
                "port": 5051,
                "attributes": {},
                "pid": f"slave(1)@{a.ip}:5051",
                "registered_time": wall,
                "resources": {**AGENT_RESOURCES, "gpus": 0.0},
                "active": True,
                "version": MESOS_VERSION,
            }
            for a in AGENTS
        ],
        "recovered_slaves": [],
        "frameworks": [
            {
                # Summary<Framework>, then what FullFrameworkWriter adds.
                "id": FRAMEWORK_ID,
                "name": FRAMEWORK_NAME,
                # Metronome schedules through libmesos' driver, a libprocess actor.
                "pid": "scheduler-3f1e6c2a-9b7d-4e55-8c1a-2d4b6f8e0a13@192.0.2.2:15101",
                "used_resources": {**used, "gpus": 0.0},
                "offered_resources": {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0},
                "capabilities": ["PARTITION_AWARE", "TASK_KILLING_STATE"],
                "hostname": "master.example",
                "webui_url": "",
                "active": True,
                "connected": True,
                "recovered": False,
                "user": "root",
                "failover_timeout": 604800.0,
                "checkpoint": True,
                "registered_time": wall,
                "unregistered_time": 0.0,
                "principal": f"dcos_{FRAMEWORK_NAME}",
                "resources": {**used, "gpus": 0.0},
                "role": "*",
                "tasks": [x.master_json(t, clock) for x in running],
                "unreachable_tasks": [],
                "completed_tasks": [x.master_json(t, clock) for x in launched if x.ended(t)],
                "offers": [],
                # Only executors a framework describes; command tasks have none here.
                "executors": [],
            }
        ],
        "completed_frameworks": [],
        "orphan_tasks": [],
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


# -- the v1 operator API (POST /api/v1) -----------------------------------------------------

APPLICATION_JSON = "application/json"
APPLICATION_PROTOBUF = "application/x-protobuf"
TERMINAL_STATES = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR"})
# mesos.v1.master.Call.Type (include/mesos/v1/master/master.proto).
CALL_TYPES = frozenset(
    {
        "UNKNOWN",
        "GET_HEALTH",
        "GET_FLAGS",
        "GET_VERSION",
        "GET_METRICS",
        "GET_LOGGING_LEVEL",
        "SET_LOGGING_LEVEL",
        "LIST_FILES",
        "READ_FILE",
        "GET_STATE",
        "GET_AGENTS",
        "GET_FRAMEWORKS",
        "GET_EXECUTORS",
        "GET_OPERATIONS",
        "GET_TASKS",
        "GET_ROLES",
        "GET_WEIGHTS",
        "UPDATE_WEIGHTS",
        "GET_MASTER",
        "SUBSCRIBE",
        "RESERVE_RESOURCES",
        "UNRESERVE_RESOURCES",
        "CREATE_VOLUMES",
        "DESTROY_VOLUMES",
        "GROW_VOLUME",
        "SHRINK_VOLUME",
        "GET_MAINTENANCE_STATUS",
        "GET_MAINTENANCE_SCHEDULE",
        "UPDATE_MAINTENANCE_SCHEDULE",
        "START_MAINTENANCE",
        "STOP_MAINTENANCE",
        "DRAIN_AGENT",
        "DEACTIVATE_AGENT",
        "REACTIVATE_AGENT",
        "GET_QUOTA",
        "UPDATE_QUOTA",
        "SET_QUOTA",
        "REMOVE_QUOTA",
        "TEARDOWN",
        "MARK_AGENT_GONE",
    }
)
HEARTBEAT: dict[str, Any] = {"type": "HEARTBEAT"}
_STATUS_UUIDS = uuid.UUID("0b8e5f0e-3c1d-4d52-9a57-6f3a2f4c1e20")
AGENT_RESOURCES = {"cpus": 4.0, "mem": 14861.0, "disk": 36949.0}


def _status_uuid(task_id: str, state: str) -> str:
    """The status update's UUID, base64 as JSON carries bytes; the same each time the
    update is shown (in statuses, status_update_uuid and TASK_UPDATED)."""
    return base64.b64encode(uuid.uuid5(_STATUS_UUIDS, f"{task_id}/{state}").bytes).decode()


def _nanoseconds(wall: float) -> dict[str, int]:
    return {"nanoseconds": int(wall * 1e9)}


def v1_resources(resources: dict[str, float], *, allocated: bool) -> list[dict[str, Any]]:
    """Unreserved scalar resources as v1 Resource messages; a task's are allocated to
    the role "*" (allocation_info), an agent's are not allocated."""
    return [
        {
            "name": name,
            "type": "SCALAR",
            "scalar": {"value": float(value)},
            **({"allocation_info": {"role": "*"}} if allocated else {}),
        }
        for name, value in resources.items()
    ]


def accepts(accept: str | None, media_type: str) -> bool:
    """Whether an Accept header allows a media type, as libprocess decides
    (Request::acceptsMediaType): no header allows all; type/subtype, then type/*, then
    */* is looked up, and a q of 0 refuses."""
    if accept is None:
        return True
    accept = accept.replace(" ", "").replace("\t", "").replace("\n", "")
    for candidate in (media_type, media_type.split("/")[0] + "/*", "*/*"):
        for item in accept.split(","):
            tokens = [token for token in item.split(";") if token]
            if not tokens or tokens[0].lower() != candidate.lower():
                continue
            q = [p.split("=")[1] for p in tokens[1:] if p.count("=") == 1 and p.startswith("q=")]
            if len(q) != 1:
                return True
            try:
                return float(q[0]) > 0
            except ValueError:
                return False
    return False


def marathon_tasks(count: int, t: float) -> list[MesosTask]:
    """Long-running tasks of Marathon's services, running since a day before t: what
    makes a production cluster's SUBSCRIBED snapshot big."""
    tasks = []
    for n in range(count):
        app = f"service-{n % 40:02d}"
        staged = t - 86400 + n * 0.01
        tasks.append(
            MesosTask(
                # Marathon's instance-based task ids: app path, instance UUID, incarnation.
                id=f"prod_{app}.instance-{uuid.uuid4()}._app.1",
                name=app,
                agent=AGENTS[n % len(AGENTS)],
                cmd="./serve",
                resources={"cpus": 0.5, "mem": 512.0, "disk": 0.0},
                script=Script(),
                staged_at=staged,
                running_at=staged + 5,
                done_at=math.inf,
                framework_id=MARATHON_FRAMEWORK_ID,
            )
        )
    return tasks


def _v1_framework(framework_id: str, name: str, registered: float) -> dict[str, Any]:
    """A GetFrameworks.Framework (the master's model(Framework))."""
    return {
        "framework_info": {
            "user": "root",
            "name": name,
            "id": {"value": framework_id},
            "failover_timeout": 604800.0,
            "checkpoint": True,
            "hostname": "master.example",
            "principal": f"dcos_{name}",
            "capabilities": [{"type": "PARTITION_AWARE"}, {"type": "TASK_KILLING_STATE"}],
        },
        "active": True,
        "connected": True,
        "recovered": False,
        "registered_time": _nanoseconds(registered),
    }


def _v1_agent(agent: Agent, registered: float) -> dict[str, Any]:
    """A GetAgents.Agent (protobuf::master::event::createAgentResponse)."""
    return {
        "agent_info": {
            "hostname": agent.host,
            "resources": v1_resources(AGENT_RESOURCES, allocated=False),
            "id": {"value": agent.slave_id},
            "port": 5051,
        },
        "active": True,
        "pid": f"slave(1)@{agent.ip}:5051",
        "registered_time": _nanoseconds(registered),
        "total_resources": v1_resources(AGENT_RESOURCES, allocated=False),
        "version": MESOS_VERSION,
        "deactivated": False,
    }


def v1_state(
    tasks: Iterable[MesosTask],
    others: list[dict[str, Any]],
    t: float,
    clock: Clock,
    registered: float,
) -> dict[str, Any]:
    """A GetState at time t (the master's jsonifyGetState): Metronome's launched tasks,
    `others` (v1 Tasks of Marathon, running) and the frameworks and agents."""
    launched = [task for task in tasks if task.staged_at <= t]
    wall = clock.wall(registered)
    frameworks = [_v1_framework(FRAMEWORK_ID, FRAMEWORK_NAME, wall)]
    if others:
        frameworks.insert(0, _v1_framework(MARATHON_FRAMEWORK_ID, "marathon", wall))
    return {
        # jsonifyGetTasks writes these three lists, empty or not (no pending_tasks).
        "get_tasks": {
            "tasks": others + [x.v1_json(t, clock) for x in launched if not x.ended(t)],
            "unreachable_tasks": [],
            "completed_tasks": [x.v1_json(t, clock) for x in launched if x.ended(t)],
        },
        # The master knows only the executors frameworks describe in their TaskInfos;
        # command tasks (Metronome's, Marathon's here) have none.
        "get_executors": {"executors": []},
        "get_frameworks": {"frameworks": frameworks, "completed_frameworks": []},
        "get_agents": {"agents": [_v1_agent(a, wall) for a in AGENTS], "recovered_agents": []},
    }


def subscribed(state: dict[str, Any], heartbeat_seconds: float) -> dict[str, Any]:
    return {
        "type": "SUBSCRIBED",
        "subscribed": {"get_state": state, "heartbeat_interval_seconds": heartbeat_seconds},
    }


def task_added(task: MesosTask) -> dict[str, Any]:
    return {"type": "TASK_ADDED", "task_added": {"task": task.v1_added()}}


def task_updated(task: MesosTask, state: str, at: float, clock: Clock) -> dict[str, Any]:
    # protobuf::master::event::createTaskUpdated: the acknowledged status and the
    # latest state, which are the same when updates are not overtaken.
    return {
        "type": "TASK_UPDATED",
        "task_updated": {
            "framework_id": {"value": task.framework_id},
            "status": task.v1_status(state, at, clock),
            "state": state,
        },
    }


def recordio(event: dict[str, Any]) -> bytes:
    """One RecordIO record (docs/recordio.md): the length in bytes of the JSON, a
    newline, the JSON (compact, as Mesos' jsonify writes it), and nothing after."""
    data = json.dumps(event, separators=(",", ":")).encode()
    return b"%d\n%s" % (len(data), data)


class Subscription:
    """What one subscriber to the master's events has been told. Whatever happened up to
    the moment it subscribed is in its snapshot; every later moment of a task's timeline
    (staged: TASK_ADDED; running, ended: TASK_UPDATED) is one event, told once, when
    it is due."""

    def __init__(self, tasks: Iterable[MesosTask], t: float, heartbeat_seconds: float) -> None:
        self._told = {task.id: _moments_by(task, t) for task in tasks}
        self._heartbeat_seconds = heartbeat_seconds
        self._next_heartbeat = t + heartbeat_seconds

    def due(
        self, tasks: Iterable[MesosTask], t: float, clock: Clock
    ) -> tuple[list[dict[str, Any]], float]:
        """The events due by t, oldest first, and the moment the next one falls due.

        A stop only moves a task's end to the moment it is made, so what was due by an
        earlier t stays as it was told."""
        happened: list[tuple[float, int, dict[str, Any]]] = []
        upcoming = math.inf
        for task in tasks:
            told = self._told.get(task.id, 0)
            timeline = task.statuses(math.inf)
            for state, at in timeline[told:]:
                if at > t:
                    upcoming = min(upcoming, at)
                    break
                event = task_added(task) if told == 0 else task_updated(task, state, at, clock)
                happened.append((at, len(happened), event))
                told += 1
            self._told[task.id] = told
        if self._next_heartbeat <= t:
            happened.append((self._next_heartbeat, len(happened), HEARTBEAT))
            # The master's heartbeater waits an interval after each one it sends.
            self._next_heartbeat = t + self._heartbeat_seconds
        happened.sort(key=lambda item: item[:2])
        return [event for *_, event in happened], min(upcoming, self._next_heartbeat)


def _moments_by(task: MesosTask, t: float) -> int:
    """How many moments of the task's timeline (staged, running, ended) are past at t."""
    return sum(1 for _, at in task.statuses(math.inf) if at <= t)
