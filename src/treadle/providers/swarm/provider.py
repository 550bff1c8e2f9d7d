"""Docker Swarm: a server group is a replicated service named like the server group
(`<region>_<server group>` outside the default region), found by its labels.

Resizing scales the service; disabling scales it to 0 with the records (the remembered
size) on its labels, in the same update; enabling scales it back. treadle never changes a
service's task template after creating it, so once no update is in progress
(UpdateStatus) the tasks meant to run are those of its current definition.

On a cluster's network (ALIAS) the engine itself keeps a task under the service's names
(the cluster's alias, `tasks.<alias>`) only while it serves: it adds a task once its
health check passes, and takes one out when it shuts it down, 2 s (its gossip delay)
before it sends the stop signal. Disconnecting a task from the network would take it out
at once, but cuts off the requests it is serving then: treadle leaves that to the engine.
Jobs: treadle.providers.swarm.jobs; the cluster lease: treadle.providers.swarm.leases.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import docker.errors

from treadle.console import Console
from treadle.errors import (
    AlreadyExists,
    ProviderError,
    ProviderUnavailable,
    ServerGroupGone,
    StageFailed,
)
from treadle.naming import Cluster
from treadle.providers.base import (
    ALIAS,
    ENDPOINTS,
    EVENTS,
    JOB_EVENTS,
    JOBS,
    TERMINATE,
    Health,
    Instance,
    JobRun,
    NewServerGroup,
    Records,
    ServerGroup,
    merged,
)
from treadle.providers.engine import resources, spec
from treadle.providers.engine.connection import connect, stable, translated, where
from treadle.providers.engine.events import SwarmEvents, group_key
from treadle.providers.swarm.jobs import ServiceJobs
from treadle.providers.swarm.leases import ServiceLeases
from treadle.providers.swarm.services import (
    labels_of,
    replicas,
    service_spec,
    update,
    with_ids,
)
from treadle.waiting import Deadline, Wakeup, wait_for

__all__ = ["SwarmProvider"]

# A task is "starting" until its container passes its health check, then "running".
STARTED = ("starting", "running")
# Task states whose container has stopped, or never started.
ENDED = ("complete", "failed", "shutdown", "rejected", "orphaned", "remove")
FAILED = ("failed", "rejected")
# UpdateStatus states of an update that has not finished.
UPDATING = ("updating", "paused", "rollback_started", "rollback_paused")
# A concurrent change to the same service makes the engine refuse ours; read it again.
UPDATE_ATTEMPTS = 3


def stopping(left: int) -> str:
    if not left:
        return "its containers are gone"
    return f"{left} container{'s' if left > 1 else ''} stopping"


class SwarmProvider(ServiceJobs, ServiceLeases):
    name = "swarm"
    default_region = spec.DEFAULT_REGION
    capabilities = frozenset({JOBS, EVENTS, JOB_EVENTS, TERMINATE, ALIAS, ENDPOINTS})

    def __init__(
        self,
        settings: object = None,
        *,
        deadline: Deadline,
        console: Console,
        request_timeout: float = 60.0,
    ) -> None:
        self.api = connect(deadline, request_timeout, console)
        with translated("asking the Docker engine about its swarm"):
            swarm = self.api.info().get("Swarm") or {}
        if swarm.get("LocalNodeState") != "active" or not swarm.get("ControlAvailable"):
            self.api.close()
            role = "a swarm worker" if swarm.get("LocalNodeState") == "active" else "not in a swarm"
            raise ProviderUnavailable(
                f"the Docker engine at {where()} is {role}: set DOCKER_HOST to a swarm "
                "manager, or make this one a swarm with `docker swarm init`"
            )
        # Where an ingress port answers: any node, this one too.
        self.address = swarm.get("NodeAddr") or spec.LOOPBACK
        # The node treadle talks to: the only one whose containers it can copy files from.
        self.node_id: str = swarm.get("NodeID") or ""
        self.console = console
        self.deadline = deadline
        self._node_addresses: dict[str, str] = {}

    def close(self) -> None:
        if "events" in self.__dict__:
            self.events.close()
        self.api.close()

    @functools.cached_property
    def events(self) -> SwarmEvents:
        """The manager's events, followed from the first wait on."""
        return SwarmEvents(self.console)

    def check_region(self, region: str) -> str:
        return spec.check_region(region)

    def watch(self, group: ServerGroup) -> AbstractContextManager[Wakeup | None]:
        return self.events.watching(group_key(group.region, group.name))

    def watch_job(self, run: JobRun) -> AbstractContextManager[Wakeup | None]:
        return self.events.watching(run.run_id)

    # --- reading ------------------------------------------------------------------------

    def _services(
        self, region: str, name: str | None = None, cluster: str | None = None
    ) -> list[dict[str, Any]]:
        services: list[dict[str, Any]] = self.api.services(
            filters=spec.region_filter(region, name, cluster)
        )
        return services

    def _to_server_group(self, service: dict[str, Any]) -> ServerGroup | None:
        return spec.to_server_group(
            labels_of(service["Spec"]),
            image=service["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image"),
            instances=replicas(service["Spec"]),
            id=service["ID"],
            endpoints=self._endpoints(service),
        )

    def _endpoints(self, service: dict[str, Any]) -> tuple[str, ...]:
        ingress = [
            spec.endpoint(self.address, p["PublishedPort"], p["Protocol"])
            for p in (service.get("Endpoint") or {}).get("Ports") or []
            if p.get("PublishedPort") and p.get("PublishMode", "ingress") == "ingress"
        ]
        host_mode = any(
            p.get("PublishMode") == "host"
            for p in (service["Spec"].get("EndpointSpec") or {}).get("Ports") or []
        )
        per_task = []
        if host_mode:
            tasks = self.api.tasks(filters={"service": service["ID"], "desired-state": "running"})
            for task in sorted(tasks, key=lambda t: t.get("Slot") or 0):
                if task["Status"]["State"] != "running":
                    continue
                address = self._node_address(task.get("NodeID") or "")
                for p in (task["Status"].get("PortStatus") or {}).get("Ports") or []:
                    per_task.append(spec.endpoint(address, p["PublishedPort"], p["Protocol"]))
        return tuple(dict.fromkeys(ingress + per_task))

    def _node_address(self, node_id: str) -> str:
        """A host-mode port answers on its task's node."""
        if node_id not in self._node_addresses:
            node = self.api.inspect_node(node_id) if node_id else {}
            address = (node.get("Status") or {}).get("Addr") or ""
            self._node_addresses[node_id] = (
                address if address not in ("", "0.0.0.0") else self.address
            )
        return self._node_addresses[node_id]

    def server_groups(self, region: str, cluster: Cluster | None = None) -> list[ServerGroup]:
        with translated(f"listing the services of region {region}"):
            listed = self._services(region, cluster=cluster.name if cluster else None)
            groups = [self._to_server_group(s) for s in listed]
        return [g for g in groups if g is not None]

    def server_group(self, region: str, name: str) -> ServerGroup | None:
        with translated(f"reading {name} in {region}"):
            found = self._services(region, name)
            return self._to_server_group(found[0]) if found else None

    def _inspect(self, group: ServerGroup) -> dict[str, Any]:
        try:
            service: dict[str, Any] = self.api.inspect_service(
                group.id or spec.resource_name(group.region, group.name)
            )
        except docker.errors.NotFound:
            raise ServerGroupGone(group.name, group.region) from None
        return service

    def health(self, group: ServerGroup) -> Health:
        with translated(f"reading the health of {group.name}"):
            service = self._inspect(group)
            tasks = self.api.tasks(filters={"service": service["ID"]})
        meant = [t for t in tasks if t["DesiredState"] == "running"]
        # Tasks still running that Swarm is stopping (scaled down, replaced).
        leaving = [
            t for t in tasks if t["DesiredState"] != "running" and t["Status"]["State"] in STARTED
        ]
        rollout = service.get("UpdateStatus") or {}
        failed = self._failed(service, tasks)
        last = failed[-1] if failed else None
        return Health(
            desired=replicas(service["Spec"]),
            running=sum(1 for t in meant if t["Status"]["State"] in STARTED),
            # Swarm reports a task running before it notices that it crashed at once.
            healthy=sum(
                1
                for t in meant
                if t["Status"]["State"] == "running" and stable(t["Status"]["Timestamp"])
            ),
            settled=not leaving and rollout.get("State") not in UPDATING,
            failed=len(failed),
            last_failure=f"{last['State']}: {last.get('Err') or last.get('Message')}"
            if last
            else None,
            stuck=f"its update is paused: {rollout.get('Message') or rollout['State']}"
            if rollout.get("State") in ("paused", "rollback_paused")
            else None,
        )

    def _failed(self, service: dict[str, Any], tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The statuses of its tasks that failed since it was last changed, oldest first."""
        since = datetime.fromisoformat(service["UpdatedAt"])
        failed = [t["Status"] for t in tasks if t["Status"]["State"] in FAILED]
        failed = [s for s in failed if datetime.fromisoformat(s["Timestamp"]) >= since]
        return sorted(failed, key=lambda status: datetime.fromisoformat(status["Timestamp"]))

    # --- writing ------------------------------------------------------------------------

    def definition(self, new: NewServerGroup) -> dict[str, Any]:
        workload = spec.with_cluster_network(
            spec.parse(new.spec, new.image, spec.SWARM), new.network, new.name.cluster.name
        )
        return service_spec(
            workload,
            spec.new_resource_name(new.region, new.name.name),
            spec.group_labels(new, workload.labels),
            new.instances,
        )

    def create(self, region: str, definition: dict[str, Any]) -> ServerGroup:
        name = definition["Labels"][spec.LABEL_SERVER_GROUP]
        with translated(f"creating {name} in {region}"):
            declared = definition.get("declared") or {}
            ids = resources.ensure(self.api, declared, definition["Labels"], swarm=True)
            try:
                self.api.create_service(
                    with_ids(definition["TaskTemplate"], ids),
                    name=definition["Name"],
                    labels=definition["Labels"],
                    mode=definition["Mode"],
                    endpoint_spec=definition["EndpointSpec"],
                )
            except docker.errors.APIError as e:
                if e.status_code == 409:
                    raise AlreadyExists(f"a service named {definition['Name']} exists") from e
                raise
        created = self.server_group(region, name)
        if created is None:
            raise StageFailed(f"the swarm made {name} but does not list it")
        return created

    def _update(self, group: ServerGroup, replicas: int, records: Records) -> None:
        """Set a service's replicas and write records on its labels. Nothing else of its
        spec changes, so no task is replaced; a concurrent change makes the engine refuse
        this one (its version moved on): read it again."""
        for attempt in range(UPDATE_ATTEMPTS):
            service = self._inspect(group)
            try:
                update(
                    self.api,
                    service,
                    labels=merged(labels_of(service["Spec"]), records),
                    mode={"Replicated": {"Replicas": replicas}},
                )
                return
            except docker.errors.APIError as e:
                if "out of sequence" not in str(e.explanation) or attempt + 1 == UPDATE_ATTEMPTS:
                    raise

    def resize(self, group: ServerGroup, instances: int) -> None:
        with translated(f"resizing {group.name}"):
            self._update(group, instances, {})

    def disable(self, group: ServerGroup, records: Records, *, keep_running: bool = False) -> None:
        if keep_running:
            raise ProviderError(
                "a Swarm service's tasks cannot rejoin its alias without a restart: "
                "--keep-running is for the docker provider"
            )
        # Its tasks leave the alias as the engine shuts them down (see the module).
        with translated(f"disabling {group.name}"):
            self._update(group, 0, records)

    def enable(self, group: ServerGroup, instances: int, records: Records) -> None:
        with translated(f"enabling {group.name}"):
            self._update(group, instances, records)

    def rotated_out(self, group: ServerGroup) -> bool:
        """The engine takes a task out of the alias as it stops it (the module)."""
        return False

    def join(self, group: ServerGroup) -> None:
        """The engine adds a task to the alias once its health check passes (the module)."""

    def instances(self, group: ServerGroup) -> list[Instance]:
        with translated(f"listing the tasks of {group.name}"):
            service = self._inspect(group)
            tasks = self.api.tasks(filters={"service": service["ID"], "desired-state": "running"})
        return [
            Instance(t["ID"], t["Status"]["State"] == "running", t.get("NodeID") or "")
            for t in sorted(tasks, key=lambda t: t.get("Slot") or 0)
        ]

    def terminate(self, group: ServerGroup, ids: Sequence[str], *, decrement: bool) -> None:
        """Swarm replaces a task whose container is killed; with `decrement` the service
        shrinks instead (Swarm itself chooses which of its tasks go)."""
        with translated(f"terminating tasks of {group.name}"):
            if decrement:
                self._update(group, max(0, replicas(self._inspect(group)["Spec"]) - len(ids)), {})
                return
            for task_id in ids:
                task = self.api.inspect_task(task_id)
                container = (task["Status"].get("ContainerStatus") or {}).get("ContainerID")
                if not container or task.get("NodeID") != self.node_id:
                    raise ProviderError(
                        f"task {task_id} of {group.name} runs on swarm node "
                        f"{task.get('NodeID')}: treadle kills only the containers of the node "
                        f"it talks to ({where()})"
                    )
                self.api.kill(container)

    def destroy(self, group: ServerGroup) -> None:
        """Remove the service, then wait (within the stage's deadline) until its tasks'
        containers are gone: Swarm removes a service at once and stops its containers
        afterwards, each within its stop_grace_period."""
        with translated(f"destroying {group.name}"):
            try:
                self.api.remove_service(group.id or spec.resource_name(group.region, group.name))
            except docker.errors.NotFound:
                pass
        with self.watch(group) as wakeup:
            wait_for(
                lambda: self._remaining(group),
                lambda left: left == 0,
                deadline=self.deadline,
                describe=stopping,
                what=group.name,
                log=self.console.info,
                wakeup=wakeup,
            )

    def _remaining(self, group: ServerGroup) -> int:
        """The tasks of a removed service whose containers have not stopped yet (the
        swarm lists a removed service's tasks by their labels until they have), and its
        containers still running on this node."""
        labels = spec.region_filter(group.region, group.name)
        with translated(f"reading what is left of {group.name}"):
            tasks = self.api.tasks(filters=labels)
            running = self.api.containers(filters=labels)
        stopping = {t["ID"] for t in tasks if t["Status"]["State"] not in ENDED}
        here = {c["Labels"].get("com.docker.swarm.task.id") for c in running}
        return len(stopping | here)
