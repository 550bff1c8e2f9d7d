"""Docker Swarm: a server group is a replicated service named like the server group
(`<region>_<server group>` outside the default region), found by its labels.

Resizing scales the service; disabling scales it to 0 and remembers the size in
LABEL_DISABLED_INSTANCES; enabling scales it back. treadle never changes a service's task
template after creating it, so once no update is in progress (UpdateStatus) the tasks
meant to run are those of its current definition.

A job run (run-job) is a `replicated-job` service of one task, named and labelled as
treadle.providers.engine.jobs says. Two gaps of Swarm (20.10) shape it: removing a job
service neither stops its running task (moby/moby#44312) nor removes the containers of its
finished ones (moby/moby#42789). So a run is stopped by asking for 0 completions, which
Swarm honours by stopping the task wherever it runs, and once its outputs are read the
service is removed along with the run's containers on this node. Its output file is
copied out of its container, which is only reachable on the node treadle talks to: a
run asked for one is placed on that node.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import docker.errors

from treadle.console import Console
from treadle.errors import ProviderUnavailable, StageFailed
from treadle.naming import Cluster
from treadle.providers import Connection
from treadle.providers.base import (
    LABEL_CREATED_AT,
    LABEL_DISABLED_INSTANCES,
    Health,
    JobRequest,
    JobRun,
    JobStatus,
    NewServerGroup,
    ServerGroup,
)
from treadle.providers.engine import jobs, spec
from treadle.providers.engine.connection import connect, stable, translated, where
from treadle.providers.swarm.services import job_spec, labels_of, replicas, service_spec
from treadle.waiting import Deadline, pause, poll_intervals

__all__ = ["SwarmProvider"]

# Tasks of a service that failed since treadle last changed it before giving up (Swarm
# itself would keep replacing them).
FAILURES_BEFORE_GIVING_UP = 3
# A task is "starting" until its container passes its health check, then "running".
STARTED = ("starting", "running")
FAILED = ("failed", "rejected")
# UpdateStatus states of an update that has not finished.
UPDATING = ("updating", "paused", "rollback_started", "rollback_paused")
# A concurrent change to the same service makes the engine refuse ours; read it again.
UPDATE_ATTEMPTS = 3
# Task states of a job run that has ended; the task's exit code is only known for those
# whose container ran.
JOB_ENDED = ("complete", "failed", "rejected", "shutdown", "orphaned", "remove")
JOB_RAN = ("complete", "failed", "shutdown")
# A job service asking for no more completions: Swarm stops its task.
JOB_STOPPED = {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 0}}
# How long a stopped run may take beyond its stop grace period before treadle moves on.
JOB_STOP_MARGIN = 10.0


class SwarmProvider:
    name = "swarm"
    default_region = spec.DEFAULT_REGION

    def __init__(self, connection: Connection, *, deadline: Deadline, console: Console) -> None:
        self.api = connect()
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
        self._node_addresses: dict[str, str] = {}

    def close(self) -> None:
        self.api.close()

    def check_region(self, region: str) -> str:
        return spec.check_region(region)

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
            raise StageFailed(f"{group.name} no longer exists in {group.region}") from None
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
        update = service.get("UpdateStatus") or {}
        return Health(
            desired=replicas(service["Spec"]),
            running=sum(1 for t in meant if t["Status"]["State"] in STARTED),
            # Swarm reports a task running before it notices that it crashed at once.
            healthy=sum(
                1
                for t in meant
                if t["Status"]["State"] == "running" and stable(t["Status"]["Timestamp"])
            ),
            settled=not leaving and update.get("State") not in UPDATING,
            failure=self._failure(service, tasks),
        )

    def _failure(self, service: dict[str, Any], tasks: list[dict[str, Any]]) -> str | None:
        update = service.get("UpdateStatus") or {}
        if update.get("State") in ("paused", "rollback_paused"):
            return f"its update is paused: {update.get('Message') or update['State']}"
        since = datetime.fromisoformat(service["UpdatedAt"])
        failed = sorted(
            (t["Status"] for t in tasks if t["Status"]["State"] in FAILED),
            key=lambda status: datetime.fromisoformat(status["Timestamp"]),
        )
        failed = [
            status for status in failed if datetime.fromisoformat(status["Timestamp"]) >= since
        ]
        if len(failed) < FAILURES_BEFORE_GIVING_UP:
            return None
        last = failed[-1]
        why = last.get("Err") or last.get("Message")
        return f"{len(failed)} tasks failed, the last one {last['State']}: {why}"

    # --- writing ------------------------------------------------------------------------

    def definition(self, new: NewServerGroup) -> dict[str, Any]:
        workload = spec.parse(new.spec, new.image)
        return service_spec(
            workload,
            spec.new_resource_name(new.region, new.name.name),
            spec.group_labels(new, workload.labels),
            new.instances,
        )

    def create(self, region: str, definition: dict[str, Any]) -> ServerGroup:
        name = definition["Labels"][spec.LABEL_SERVER_GROUP]
        with translated(f"creating {name} in {region}"):
            try:
                self.api.create_service(
                    definition["TaskTemplate"],
                    name=definition["Name"],
                    labels=definition["Labels"],
                    mode=definition["Mode"],
                    endpoint_spec=definition["EndpointSpec"],
                )
            except docker.errors.APIError as e:
                # A stage run again after a CI retry finds the service it made: adopt it.
                if e.status_code != 409 or not self._made_by(region, name, definition):
                    raise
        created = self.server_group(region, name)
        if created is None:
            raise StageFailed(f"the swarm made {name} but does not list it")
        return created

    def _made_by(self, region: str, name: str, definition: dict[str, Any]) -> bool:
        found = self._services(region, name)
        ours = definition["Labels"][LABEL_CREATED_AT]
        return bool(found) and labels_of(found[0]["Spec"]).get(LABEL_CREATED_AT) == ours

    def _update(
        self, group: ServerGroup, change: Callable[[dict[str, Any]], tuple[int, dict[str, str]]]
    ) -> None:
        """Set a service's replicas and labels from `change(current spec)`. Nothing else of
        its spec changes, so no task is replaced."""
        for attempt in range(UPDATE_ATTEMPTS):
            service = self._inspect(group)
            current = service["Spec"]
            size, labels = change(current)
            try:
                self.api.update_service(
                    service["ID"],
                    service["Version"]["Index"],
                    task_template=current["TaskTemplate"],
                    name=current["Name"],
                    labels=labels,
                    mode={"Replicated": {"Replicas": size}},
                    update_config=current.get("UpdateConfig"),
                    rollback_config=current.get("RollbackConfig"),
                    endpoint_spec=current.get("EndpointSpec"),
                )
                return
            except docker.errors.APIError as e:
                if "out of sequence" not in str(e.explanation) or attempt + 1 == UPDATE_ATTEMPTS:
                    raise

    def resize(self, group: ServerGroup, instances: int) -> None:
        with translated(f"resizing {group.name}"):
            self._update(group, lambda current: (instances, labels_of(current)))

    def disable(self, group: ServerGroup, remember: int) -> None:
        with translated(f"disabling {group.name}"):
            self._update(
                group,
                lambda current: (
                    0,
                    {**labels_of(current), LABEL_DISABLED_INSTANCES: str(remember)},
                ),
            )

    def enable(self, group: ServerGroup) -> None:
        def change(current: dict[str, Any]) -> tuple[int, dict[str, str]]:
            labels = labels_of(current)
            remembered = labels.pop(LABEL_DISABLED_INSTANCES, "")
            return int(remembered) if remembered.isdigit() else replicas(current), labels

        with translated(f"enabling {group.name}"):
            self._update(group, change)

    def destroy(self, group: ServerGroup) -> None:
        with translated(f"destroying {group.name}"):
            try:
                self.api.remove_service(group.id or spec.resource_name(group.region, group.name))
            except docker.errors.NotFound:
                pass

    # --- one-off jobs (run-job) ---------------------------------------------------------

    def job_definition(self, job: JobRequest) -> dict[str, Any]:
        return job_spec(jobs.plan(job), self.node_id if job.output_file else None)

    def start_job(self, definition: dict[str, Any]) -> JobRun:
        labels = definition["Labels"]
        run = JobRun(labels[jobs.LABEL_JOB], labels[jobs.LABEL_JOB_RUN])
        with translated(f"starting run {run.run_id} of job {run.job_id}"):
            self.api.create_service(
                definition["TaskTemplate"],
                name=definition["Name"],
                labels=labels,
                mode=definition["Mode"],
            )
        return run

    def _job_task(self, run: JobRun) -> dict[str, Any] | None:
        """The run's one task (it is never restarted), None until Swarm has made it."""
        try:
            tasks = self.api.tasks(filters={"service": jobs.resource_name(run.job_id, run.run_id)})
        except docker.errors.NotFound:
            raise StageFailed(
                f"the service of run {run.run_id} of job {run.job_id} was removed while it ran"
            ) from None
        return tasks[0] if tasks else None

    def job_status(self, run: JobRun) -> JobStatus:
        with translated(f"reading run {run.run_id} of job {run.job_id}"):
            task = self._job_task(run)
        if task is None:
            return JobStatus("new", finished=False)
        status = task["Status"]
        state = status["State"]
        if state not in JOB_ENDED:
            return JobStatus(state, finished=False)
        container = status.get("ContainerStatus") or {}
        ran = state in JOB_RAN and container.get("ContainerID")
        return JobStatus(
            state,
            finished=True,
            succeeded=state == "complete",
            exit_code=container.get("ExitCode") if ran else None,
            message=None if state == "complete" else status.get("Err") or status.get("Message"),
        )

    def job_log(self, run: JobRun, offset: int) -> tuple[str, int]:
        with translated(f"reading the log of run {run.run_id} of job {run.job_id}"):
            chunks = self.api.service_logs(
                jobs.resource_name(run.job_id, run.run_id), stdout=True, is_tty=False
            )
            data = b"".join(chunks)
        return jobs.decoded_from(data, offset)

    def job_file(self, run: JobRun, path: str) -> bytes | None:
        with translated(f"copying {path} out of run {run.run_id} of job {run.job_id}"):
            task = self._job_task(run) or {}
            container = (task.get("Status") or {}).get("ContainerStatus") or {}
            if not container.get("ContainerID"):
                raise StageFailed(f"cannot read {path}: run {run.run_id} started no container")
            try:
                return jobs.read_file(self.api, container["ContainerID"], path)
            except docker.errors.NotFound:
                raise StageFailed(
                    f"cannot read {path}: run {run.run_id} ran on swarm node "
                    f"{task.get('NodeID')}, and treadle copies files only from the node it "
                    f"talks to ({where()})"
                ) from None

    def stop_job(self, run: JobRun) -> None:
        """Ask for no completions and wait until Swarm has stopped the task."""
        name = jobs.resource_name(run.job_id, run.run_id)
        with translated(f"stopping run {run.run_id} of job {run.job_id}"):
            try:
                service = self.api.inspect_service(name)
            except docker.errors.NotFound:
                return
            current = service["Spec"]
            self.api.update_service(
                service["ID"],
                service["Version"]["Index"],
                task_template=current["TaskTemplate"],
                name=current["Name"],
                labels=current["Labels"],
                mode=JOB_STOPPED,
            )
            grace = current["TaskTemplate"]["ContainerSpec"].get("StopGracePeriod") or 0
            end = time.monotonic() + grace / 10**9 + JOB_STOP_MARGIN
            for interval in poll_intervals():
                tasks = self.api.tasks(filters={"service": service["ID"]})
                if all(t["Status"]["State"] in JOB_ENDED for t in tasks):
                    return
                if time.monotonic() >= end:
                    self.console.warn(f"run {run.run_id} of job {run.job_id} is still stopping")
                    return
                pause(interval)

    def finish_job(self, run: JobRun) -> None:
        with translated(f"removing run {run.run_id} of job {run.job_id}"):
            try:
                self.api.remove_service(jobs.resource_name(run.job_id, run.run_id))
            except docker.errors.NotFound:
                pass
            for container in self.api.containers(all=True, filters=jobs.run_filter(run.run_id)):
                try:
                    self.api.remove_container(container["Id"], force=True)
                except docker.errors.APIError as e:
                    # Swarm removes a stopped run's container itself, maybe at this moment.
                    if e.status_code not in (404, 409):
                        raise
