"""Marathon's scheduler state: apps, tasks, deployments and groups, driven by a clock.

Nothing ticks in the background. Every future change is a wake-up for one app (a task
reaching TASK_RUNNING, passing its first health check, failing, a launch backoff
ending, a deployment's minimum duration passing). `advance(now)` replays the due
wake-ups in time order, so a request sees exactly the state at its arrival time and
the outcome does not depend on thread scheduling. What happens is also written down as
Marathon's events (`events`), each with the time it happened, for the event stream.
"""

from __future__ import annotations

import copy
import heapq
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import events
from .apps import capacity_to_keep, image_of, parent_ids, port_mappings, without_instances

SERVICE_PORT_MIN = 10000  # Marathon's default local_port_min
HOST_PORT_MIN, HOST_PORT_MAX = 31000, 32000  # the usual Mesos agent port range
AGENT_ID_PREFIX = "7d0a4f3e-6c1b-4b3a-9a52-5f0c2e8d1b6a"
FAILURE_MESSAGE = "Container exited with status 1"


@dataclass(frozen=True)
class Timings:
    deploy_seconds: float  # minimum time a deployment stays listed
    task_start_seconds: float  # TASK_STAGING -> TASK_RUNNING
    health_seconds: float  # running -> first health check result, then the check interval
    failure_seconds: float  # how long a task of a failing image runs before TASK_FAILED
    backoff_seconds: float  # launch delay after a task failure


@dataclass(frozen=True)
class Agent:
    host: str
    slave_id: str
    ip: str


# Reserved .example names and TEST-NET-1 addresses: nothing real answers there.
AGENTS = tuple(
    Agent(f"agent-{n}.example", f"{AGENT_ID_PREFIX}-S{n}", f"192.0.2.{10 + n}") for n in (1, 2, 3)
)


@dataclass
class Task:
    id: str
    app_id: str
    generation: int  # the app generation it was launched for
    version: str  # the app version it was launched with
    agent: Agent
    ports: list[int]
    service_ports: list[int]
    staged_at: float
    running_at: float
    healthy_at: float | None  # first passing health check; None when it never passes
    failed_at: float | None  # None unless its image is failing
    health_checked: bool  # its app has health checks
    # What the event stream was last told of it.
    announced_status: str = ""
    announced_healthy: bool = False

    def running(self, t: float) -> bool:
        return self.running_at <= t

    def ready(self, t: float) -> bool:
        """Counts towards a deployment's goal: running, and healthy when checked.

        A task of a failing image never counts, so its deployment never finishes.
        """
        if self.failed_at is not None:
            return False
        if not self.health_checked:
            return self.running(t)
        return self.healthy_at is not None and self.healthy_at <= t


@dataclass
class App:
    definition: dict[str, Any]
    version: str
    last_scaling_at: str
    last_config_change_at: str
    # version -> the app as GET /v2/apps/{id}/versions/{version} answers it, oldest first
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Bumped by config changes and restarts; tasks of an older generation get replaced.
    generation: int = 0
    tasks: list[Task] = field(default_factory=list)
    launch_delay_until: float = 0.0
    last_failure: dict[str, Any] | None = None

    @property
    def id(self) -> str:
        return str(self.definition["id"])

    def snapshot(self) -> dict[str, Any]:
        """The app as its version history keeps it: a copy of its own."""
        return copy.deepcopy(self.view())

    def view(self) -> dict[str, Any]:
        """The app as answers show it, sharing the definition's nested values: a
        definition is replaced on every change, never changed in place, so an answer
        rendered from it stays right without copying thousands of apps."""
        return {
            **self.definition,
            # Marathon 1.x still writes the deprecated `ports`: the service ports.
            "ports": service_ports(self.definition),
            "version": self.version,
            "versionInfo": {
                "lastScalingAt": self.last_scaling_at,
                "lastConfigChangeAt": self.last_config_change_at,
            },
        }


@dataclass
class Deployment:
    id: str
    app_id: str
    version: str
    actions: list[str]  # one action per step, e.g. ["StartApplication", "ScaleApplication"]
    started_at: float
    original: dict[str, Any] | None  # the definition before, for a rollback
    # No task to start or kill (an app of no instances made or removed): Marathon's
    # deployment manager finishes it at once, so it does not stay listed.
    trivial: bool = False


class AppLocked(Exception):
    def __init__(self, deployment_ids: list[str]) -> None:
        super().__init__(deployment_ids)
        self.deployment_ids = deployment_ids


def format_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms // 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{epoch_ms % 1000:03d}Z"


def service_ports(definition: dict[str, Any]) -> list[int]:
    return [int(p.get("port", 0)) for p in definition["portDefinitions"]] + [
        int(m.get("servicePort", 0)) for m in port_mappings(definition)
    ]


class MarathonState:
    """All mutable state. Not thread-safe: the emulator serialises access with a lock."""

    def __init__(self, timings: Timings, now: float) -> None:
        self.timings = timings
        self.failing_images: set[str] = set()
        self.unhealthy_images: set[str] = set()
        self.apps: dict[str, App] = {}
        self.groups: dict[str, str] = {}  # group id -> version; groups outlive their apps
        self.deployments: dict[str, Deployment] = {}
        # When each deployment finished (this clock), for measuring how soon a client notices.
        self.finished_deployments: list[float] = []
        # Marathon events not yet taken by the emulator, oldest first.
        self.events: list[events.Event] = []
        self.now = now
        self._wall_offset = time.time() - now
        self._wakeups: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._last_version_ms = 0
        self._host_ports = itertools.cycle(range(HOST_PORT_MIN, HOST_PORT_MAX))
        # How many stored definitions use each service port, and where the search for a
        # free one goes on: picking a port stays cheap in a region of 10,000 apps.
        self._service_port_users: Counter[int] = Counter()
        self._next_service_port = SERVICE_PORT_MIN
        self._agents = itertools.cycle(AGENTS)
        self.groups["/"] = self.timestamp(now)

    # -- time ------------------------------------------------------------------------

    def timestamp(self, t: float) -> str:
        return format_ms(int((t + self._wall_offset) * 1000))

    def new_version(self, t: float) -> str:
        # Versions identify app revisions (rollback targets), so two changes in the same
        # millisecond still get distinct, increasing versions.
        epoch_ms = max(int((t + self._wall_offset) * 1000), self._last_version_ms + 1)
        self._last_version_ms = epoch_ms
        return format_ms(epoch_ms)

    def next_wakeup(self) -> float | None:
        return self._wakeups[0][0] if self._wakeups else None

    def advance(self, now: float) -> None:
        """Replay every wake-up due by `now`, each at its own time, then move to `now`."""
        while self._wakeups and self._wakeups[0][0] <= now:
            t, _, app_id = heapq.heappop(self._wakeups)
            # Wake-ups scheduled while replaying (a relaunch after a failure, ...) count
            # from the replayed moment, so the outcome does not depend on request timing.
            self.now = max(self.now, t)
            self._reconcile(app_id, t)
        self.now = max(self.now, now)

    def _wake(self, t: float, app_id: str) -> None:
        # Never before the present: an app is only ever reconciled forward in time.
        heapq.heappush(self._wakeups, (max(t, self.now), next(self._sequence), app_id))

    # -- changes (each one is a deployment) --------------------------------------------

    def deploy(
        self, app_id: str, target: dict[str, Any] | None, force: bool, restart: bool = False
    ) -> Deployment:
        """Move app `app_id` to `target` (None deletes it) through a new deployment at `now`.

        Raises AppLocked when a running deployment affects the app, unless `force`, which
        cancels those deployments instead.
        """
        running = [d for d in self.deployments.values() if d.app_id == app_id]
        if running and not force:
            raise AppLocked([d.id for d in running])
        now = self.now
        for cancelled in running:
            self.cancel(cancelled)
        version = self.new_version(now)
        app = self.apps.get(app_id)
        original = copy.deepcopy(app.definition) if app else None
        trivial = False
        if target is None:
            actions = ["StopApplication"] if app else []
            trivial = app is None or not app.tasks
            if app is not None:
                self._kill(app, list(app.tasks), now)
                self._count_service_ports(app.definition, None)
                del self.apps[app_id]
        elif app is None:
            self._assign_service_ports(target, None)
            app = App(target, version, version, version)
            app.history[version] = app.snapshot()
            self._count_service_ports(None, target)
            self.apps[app_id] = app
            actions = ["StartApplication"] + (["ScaleApplication"] if target["instances"] else [])
            trivial = not target["instances"]
        else:
            self._assign_service_ports(target, app.definition)
            actions = self._update(app, target, version, restart)
        if actions:
            self._touch_groups(app_id, version)
        deployment = Deployment(
            str(uuid.uuid4()), app_id, version, actions, now, original, trivial=trivial
        )
        self.deployments[deployment.id] = deployment
        self.events.append(events.deployment_step(self, deployment, now, "deployment_info"))
        self._wake(now + self.timings.deploy_seconds, app_id)
        self._reconcile(app_id, now)
        return deployment

    def _update(self, app: App, target: dict[str, Any], version: str, restart: bool) -> list[str]:
        config_changed = without_instances(target) != without_instances(app.definition)
        scaled = target["instances"] != app.definition["instances"]
        if not (config_changed or scaled or restart):
            return []  # Marathon still answers with a (empty) deployment; the app keeps its version
        self._count_service_ports(app.definition, target)
        app.definition = target
        app.version = version
        app.last_scaling_at = version
        if config_changed:
            app.last_config_change_at = version
        if config_changed or restart:
            app.generation += 1
            app.launch_delay_until = 0.0  # a new config gets a fresh launch backoff
        app.history[version] = app.snapshot()
        return ["RestartApplication"] if config_changed or restart else ["ScaleApplication"]

    def rollback(self, deployment: Deployment) -> Deployment:
        """DELETE /v2/deployments/{id}: a new deployment back to the state before it."""
        return self.deploy(deployment.app_id, copy.deepcopy(deployment.original), force=True)

    def cancel(self, deployment: Deployment) -> None:
        """Stop a deployment where it is, without a rollback (a forced change, or
        DELETE /v2/deployments/{id}?force=true)."""
        del self.deployments[deployment.id]
        self.events.append(events.deployment_ended(self, deployment, self.now, succeeded=False))

    def seed(
        self,
        definition: dict[str, Any],
        running: bool,
        version: str | None,
        version_info: dict[str, str],
    ) -> App:
        """Store an app at once, without a deployment; `running` starts its tasks in the past."""
        self._assign_service_ports(definition, None)
        version = version or version_info.get("lastScalingAt") or self.new_version(self.now)
        app = App(
            definition,
            version,
            version_info.get("lastScalingAt", version),
            version_info.get("lastConfigChangeAt", version),
        )
        app.history[version] = app.snapshot()
        replaced = self.apps.get(app.id)
        self._count_service_ports(replaced.definition if replaced else None, definition)
        self.apps[app.id] = app
        self._touch_groups(app.id, version)
        if running:
            # Launched long enough ago to be running and past the first health check now.
            launched = self.now - self.timings.task_start_seconds - self.timings.health_seconds
            for _ in range(int(definition["instances"])):
                self._launch(app, launched)
            # Marathon told its event stream of these long ago.
            for task in app.tasks:
                task.announced_status, task.announced_healthy = (
                    "TASK_RUNNING",
                    task.healthy_at is not None,
                )
        self._reconcile(app.id, self.now)
        return app

    def kill_tasks(self, ids: list[str], scale: bool) -> list[Deployment] | list[Task]:
        """POST /v2/tasks/delete: kill tasks by id. Without `scale` the app relaunches
        them (the killed tasks are the answer); with it each app's size shrinks by the
        tasks killed, through a deployment (the deployments are the answer). KeyError
        names a task that no app runs."""
        owners = {task.id: app for app in self.apps.values() for task in app.tasks}
        for task_id in ids:
            if task_id not in owners:
                raise KeyError(task_id)
        now = self.now
        if not scale:
            killed = [next(x for x in owners[i].tasks if x.id == i) for i in ids]
            for task in killed:
                self._kill(owners[task.id], [task], now)
                self._wake(now, task.app_id)
            return killed
        deployments = []
        for app in {id(owners[i]): owners[i] for i in ids}.values():
            mine = [x for x in app.tasks if x.id in ids]
            self._kill(app, mine, now)
            target = {**app.definition, "instances": int(app.definition["instances"]) - len(mine)}
            deployments.append(self.deploy(app.id, target, force=False))
        return deployments

    def add_group(self, group_id: str, version: str | None) -> None:
        for parent in parent_ids(group_id):
            self.groups.setdefault(parent, version or self.timestamp(self.now))
        self.groups[group_id] = version or self.timestamp(self.now)

    def _touch_groups(self, app_id: str, version: str) -> None:
        for group_id in parent_ids(app_id):
            self.groups[group_id] = version

    def _assign_service_ports(
        self, definition: dict[str, Any], previous: dict[str, Any] | None
    ) -> None:
        """Give every service port 0 a port: the previous one at that index, else a free one.

        Keeping the previous ports makes re-sending an unchanged definition a no-op, as in
        Marathon.
        """
        before = service_ports(previous) if previous else []
        slots = [(p, "port") for p in definition["portDefinitions"]] + [
            (m, "servicePort") for m in port_mappings(definition)
        ]
        for index, (holder, key) in enumerate(slots):
            if holder.get(key):
                continue
            if index < len(before) and before[index]:
                holder[key] = before[index]
                continue
            holder[key] = self._free_service_port()

    def _free_service_port(self) -> int:
        """A port no stored app uses, never one handed out before."""
        while self._service_port_users[self._next_service_port]:
            self._next_service_port += 1
        self._next_service_port += 1
        return self._next_service_port - 1

    def _count_service_ports(
        self, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        """Keep the port counts in step as `after` is stored in place of `before` (None:
        no app before, or none after)."""
        if before is not None:
            self._service_port_users.subtract(service_ports(before))
        if after is not None:
            self._service_port_users.update(service_ports(after))

    # -- the scheduler loop ------------------------------------------------------------

    def _reconcile(self, app_id: str, t: float) -> None:
        app = self.apps.get(app_id)
        if app is not None:
            self._expunge_failed(app, t)
            self._converge(app, t)
            self._announce(app, t)
        for deployment in [d for d in self.deployments.values() if d.app_id == app_id]:
            if not self._goal_reached(app, t):
                continue
            ends = deployment.started_at + (
                0 if deployment.trivial else self.timings.deploy_seconds
            )
            if t >= ends:
                del self.deployments[deployment.id]
                self.finished_deployments.append(t)
                self.events.append(
                    events.deployment_step(self, deployment, t, "deployment_step_success")
                )
                self.events.append(events.deployment_ended(self, deployment, t, succeeded=True))
            else:
                self._wake(ends, app_id)

    def _announce(self, app: App, t: float) -> None:
        """The status and health events of the app's tasks that changed by `t`."""
        for task in app.tasks:
            status = "TASK_RUNNING" if task.running(t) else "TASK_STAGING"
            if status != task.announced_status:
                task.announced_status = status
                moment = task.running_at if task.running(t) else task.staged_at
                self.events.append(events.status_update(self, task, status, moment))
            if task.healthy_at is not None and task.healthy_at <= t and not task.announced_healthy:
                task.announced_healthy = True
                self.events.append(events.health_status_changed(self, task, True, task.healthy_at))

    def _expunge_failed(self, app: App, t: float) -> None:
        for task in [x for x in app.tasks if x.failed_at is not None and x.failed_at <= t]:
            app.tasks.remove(task)
            assert task.failed_at is not None
            self.events.append(
                events.status_update(self, task, "TASK_FAILED", task.failed_at, FAILURE_MESSAGE)
            )
            app.last_failure = {
                "appId": app.id,
                "host": task.agent.host,
                "message": FAILURE_MESSAGE,
                "state": "TASK_FAILED",
                "taskId": task.id,
                "timestamp": self.timestamp(task.failed_at),
                "version": task.version,
                "slaveId": task.agent.slave_id,
            }
            app.launch_delay_until = max(
                app.launch_delay_until, task.failed_at + self.timings.backoff_seconds
            )

    def _converge(self, app: App, t: float) -> None:
        instances = int(app.definition["instances"])
        current = [x for x in app.tasks if x.generation == app.generation]
        if len(current) > instances:
            self._kill(app, self._kill_order(app, current)[: len(current) - instances], t)
            current = [x for x in app.tasks if x.generation == app.generation]
        outdated = [x for x in app.tasks if x.generation != app.generation]
        if outdated:
            # Upgrade: old tasks go as new ones become ready, keeping
            # minimumHealthCapacity of the app serving throughout.
            ready = sum(1 for x in current if x.ready(t))
            minimum = app.definition["upgradeStrategy"]["minimumHealthCapacity"]
            keep = max(0, capacity_to_keep(instances, minimum) - ready)
            if len(outdated) > keep:
                self._kill(app, self._kill_order(app, outdated)[: len(outdated) - keep], t)
        missing = instances - len(current)
        if missing <= 0:
            return
        if t < app.launch_delay_until:
            self._wake(app.launch_delay_until, app.id)
            return
        for _ in range(missing):
            self._launch(app, t)

    @staticmethod
    def _kill_order(app: App, tasks: list[Task]) -> list[Task]:
        # app.tasks is in launch order, which also orders tasks staged at the same time.
        chosen = {x.id for x in tasks}
        ordered = [x for x in app.tasks if x.id in chosen]
        return ordered[::-1] if app.definition["killSelection"] == "YOUNGEST_FIRST" else ordered

    def _kill(self, app: App, tasks: list[Task], t: float) -> None:
        # Killed tasks vanish at once (TASK_KILLING is not simulated).
        for task in tasks:
            app.tasks.remove(task)
            self.events.append(events.status_update(self, task, "TASK_KILLED", t))

    def _launch(self, app: App, t: float) -> None:
        definition = app.definition
        image = image_of(definition)
        timings = self.timings
        running_at = t + timings.task_start_seconds
        checked = bool(definition["healthChecks"])
        healthy = checked and image not in self.unhealthy_images
        agent = next(self._agents)
        ports = service_ports(definition)
        if not definition["requirePorts"]:
            ports = [next(self._host_ports) for _ in ports]
        task = Task(
            id=f"{app.id.strip('/').replace('/', '_')}.{uuid.uuid4()}",
            app_id=app.id,
            generation=app.generation,
            version=app.version,
            agent=agent,
            ports=ports,
            service_ports=service_ports(definition),
            staged_at=t,
            running_at=running_at,
            healthy_at=running_at + timings.health_seconds if healthy else None,
            failed_at=running_at + timings.failure_seconds
            if image in self.failing_images
            else None,
            health_checked=checked,
        )
        app.tasks.append(task)
        for moment in (task.running_at, task.healthy_at, task.failed_at):
            if moment is not None:
                self._wake(moment, app.id)

    def _goal_reached(self, app: App | None, t: float) -> bool:
        if app is None:
            return True  # StopApplication: the tasks were killed with the app
        instances = int(app.definition["instances"])
        return len(app.tasks) == instances and all(
            x.generation == app.generation and x.ready(t) for x in app.tasks
        )
