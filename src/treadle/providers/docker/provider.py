"""The local Docker engine: a server group is a set of containers; a job run is one
container, run once and removed when its outputs are read (treadle.providers.engine.jobs).

    web-prod-v003       the definition container: created and never started. It holds
                        the group's definition and state (LABEL_DISABLED_INSTANCES once
                        disabled), so that a group of 0 instances or a disabled one exists
    web-prod-v003-1     its instances, numbered in the order they were made: copies of
    web-prod-v003-2     the definition container, started

Outside the default region every name starts with `<region>_`. treadle finds containers
by their labels (treadle.region, treadle.server-group and the LABEL_* of base.py), never
by name; names only keep regions apart. Instances restart unless stopped; disabling a
group stops them and keeps them, enabling starts them again.
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from typing import Any

import docker.errors

from treadle.console import Console
from treadle.errors import ProviderError, StageFailed
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
from treadle.providers.docker.containers import (
    FAILURES_BEFORE_GIVING_UP,
    JOB_RESTART_POLICY,
    LABEL_INSTANCE,
    Containers,
    container_config,
    copy_config,
    definition_labels,
    number,
)
from treadle.providers.engine import jobs, spec
from treadle.providers.engine.connection import connect, stable, translated
from treadle.providers.engine.events import EngineEvents, group_key
from treadle.waiting import Deadline, Wakeup

__all__ = ["DockerProvider"]


class DockerProvider:
    name = "docker"
    default_region = spec.DEFAULT_REGION

    def __init__(self, connection: Connection, *, deadline: Deadline, console: Console) -> None:
        self.api = connect()
        self.console = console
        # Restart count of each instance when treadle last started it or first saw it.
        self._restarts: dict[str, int] = {}

    def close(self) -> None:
        if "events" in self.__dict__:
            self.events.close()
        self.api.close()

    @functools.cached_property
    def events(self) -> EngineEvents:
        """The engine's events, followed from the first wait on."""
        return EngineEvents(self.console)

    def watch(self, group: ServerGroup) -> AbstractContextManager[Wakeup]:
        return self.events.watching(group_key(group.region, group.name))

    def watch_job(self, run: JobRun) -> AbstractContextManager[Wakeup | None]:
        return self.events.watching(run.run_id)

    def check_region(self, region: str) -> str:
        return spec.check_region(region)

    # --- reading ------------------------------------------------------------------------

    def _list(
        self, region: str, server_group: str | None = None, cluster: str | None = None
    ) -> dict[str, Containers]:
        listed = self.api.containers(
            all=True, filters=spec.region_filter(region, server_group, cluster)
        )
        by_group: dict[str, list[dict[str, Any]]] = {}
        for container in listed:
            by_group.setdefault(container["Labels"].get(spec.LABEL_SERVER_GROUP, ""), []).append(
                container
            )
        return {name: Containers.of(region, name, found) for name, found in by_group.items()}

    def _find(self, group: ServerGroup) -> Containers | None:
        return self._list(group.region, group.name).get(group.name)

    def _require(self, group: ServerGroup) -> Containers:
        found = self._find(group)
        if found is None:
            raise StageFailed(f"{group.name} no longer exists in {group.region}")
        return found

    def _inspect(self, found: Containers) -> dict[str, Any]:
        inspected: dict[str, Any] = self.api.inspect_container(found.source["Id"])
        return inspected

    def _to_server_group(self, found: Containers) -> ServerGroup | None:
        return spec.to_server_group(
            found.source["Labels"],
            image=self._inspect(found)["Config"]["Image"],
            instances=len(found.instances),
            id=found.name,
            endpoints=found.endpoints(),
        )

    def server_groups(self, region: str, cluster: Cluster | None = None) -> list[ServerGroup]:
        with translated(f"listing the containers of region {region}"):
            listed = self._list(region, cluster=cluster.name if cluster else None)
            groups = [self._to_server_group(found) for found in listed.values()]
        return [g for g in groups if g is not None]

    def server_group(self, region: str, name: str) -> ServerGroup | None:
        with translated(f"reading {name} in {region}"):
            found = self._list(region, name).get(name)
            return self._to_server_group(found) if found else None

    def health(self, group: ServerGroup) -> Health:
        with translated(f"reading the health of {group.name}"):
            found = self._require(group)
            states = [self.api.inspect_container(c["Id"]) for c in found.instances]
        enabled = LABEL_DISABLED_INSTANCES not in found.source["Labels"]
        running = [s for s in states if self._running(s)]
        healthy = [
            s
            for s in running
            if (s["State"].get("Health") or {}).get("Status", "healthy") == "healthy"
        ]
        return Health(
            desired=len(states) if enabled else 0,
            running=len(running),
            healthy=len(healthy),
            failure=self._failure(states) if enabled else None,
        )

    def _restarted(self, inspected: dict[str, Any]) -> int:
        """How often it restarted since treadle started it or first saw it."""
        count: int = inspected["RestartCount"]
        return count - self._restarts.setdefault(inspected["Id"], count)

    def _running(self, inspected: dict[str, Any]) -> bool:
        state = inspected["State"]
        if not state["Running"] or state["Restarting"]:
            return False
        # One that crashed and was restarted counts once it stays up, so that a crash loop
        # caught between two crashes is not taken for a running instance.
        return not self._restarted(inspected) or stable(state["StartedAt"])

    def _failure(self, states: list[dict[str, Any]]) -> str | None:
        for s in states:
            name, state = s["Name"].lstrip("/"), s["State"]
            if not state["Running"] and state.get("Error"):
                return f"{name} cannot start: {state['Error']}"
            restarts = self._restarted(s)
            if restarts >= FAILURES_BEFORE_GIVING_UP:
                return f"{name} exited {restarts} times, the last time with exit code {state['ExitCode']}"
        return None

    # --- writing ------------------------------------------------------------------------

    def definition(self, new: NewServerGroup) -> dict[str, Any]:
        workload = spec.parse(new.spec, new.image)
        return {
            "name": spec.new_resource_name(new.region, new.name.name),
            "instances": new.instances,
            "container": container_config(workload, spec.group_labels(new, workload.labels)),
        }

    def create(self, region: str, definition: dict[str, Any]) -> ServerGroup:
        config = definition["container"]
        name = config["Labels"][spec.LABEL_SERVER_GROUP]
        with translated(f"creating {name} in {region}"):
            try:
                self._create(definition["name"], config)
            except docker.errors.APIError as e:
                # A stage run again after a CI retry finds the group it made: adopt it.
                if e.status_code != 409 or not self._made_by(region, name, config):
                    raise
            found = self._list(region, name)[name]
            self._scale(found, config, definition["instances"])
        created = self.server_group(region, name)
        if created is None:
            raise StageFailed(f"the engine made {name} but does not list it")
        return created

    def _made_by(self, region: str, name: str, config: dict[str, Any]) -> bool:
        found = self._list(region, name).get(name)
        ours = config["Labels"][LABEL_CREATED_AT]
        return found is not None and found.source["Labels"].get(LABEL_CREATED_AT) == ours

    def resize(self, group: ServerGroup, instances: int) -> None:
        with translated(f"resizing {group.name}"):
            found = self._require(group)
            self._scale(found, self._instance_config(found), instances)

    def disable(self, group: ServerGroup, remember: int) -> None:
        with translated(f"disabling {group.name}"):
            found = self._require(group)
            self._replace_definition(found, disabled=remember)
            for container in found.instances:
                self.api.stop(container["Id"])

    def enable(self, group: ServerGroup) -> None:
        with translated(f"enabling {group.name}"):
            found = self._require(group)
            remembered = found.source["Labels"].get(LABEL_DISABLED_INSTANCES, "")
            config = self._replace_definition(found, disabled=None)
            self._scale(
                found, config, int(remembered) if remembered.isdigit() else len(found.instances)
            )

    def destroy(self, group: ServerGroup) -> None:
        with translated(f"destroying {group.name}"):
            found = self._find(group)
            if found is None:
                return
            for container in reversed(found.instances):
                self._remove(container)
            if found.definition:
                self._remove(found.definition)

    def _create(self, name: str, config: dict[str, Any]) -> str:
        """Create a container, pulling its image first when the engine lacks it (as
        `docker run` does)."""
        try:
            created = self.api.create_container_from_config(config, name=name)
        except docker.errors.ImageNotFound:
            self._pull(config["Image"])
            created = self.api.create_container_from_config(config, name=name)
        container_id: str = created["Id"]
        return container_id

    def _pull(self, image: str) -> None:
        self.console.info(f"pulling {image}")
        with translated(f"cannot pull {image}"):
            for event in self.api.pull(image, stream=True, decode=True):
                if "error" in event:
                    raise ProviderError(f"cannot pull {image}: {event['error']}")

    def _start(self, container_id: str, name: str) -> None:
        try:
            self.api.start(container_id)
        except docker.errors.APIError as e:
            # Reported by health() as the group's failure, so that a deploy can roll back.
            self.console.warn(f"cannot start {name}: {e.explanation or e}")
        self._restarts[container_id] = 0

    def _remove(self, container: dict[str, Any]) -> None:
        if container["State"] in ("running", "restarting"):
            self.api.stop(container["Id"])
        self.api.remove_container(container["Id"], force=True)

    def _instance_config(self, found: Containers) -> dict[str, Any]:
        inspected = self._inspect(found)
        return copy_config(inspected, inspected["Config"]["Labels"])

    def _scale(self, found: Containers, config: dict[str, Any], size: int) -> None:
        """Run exactly `size` instances: remove the newest beyond it, start stopped ones,
        add new ones numbered after the highest."""
        keep, extra = found.instances[:size], found.instances[size:]
        for container in reversed(extra):
            self._remove(container)
        for container in keep:
            if container["State"] not in ("running", "restarting"):
                self._start(container["Id"], container["Names"][0].lstrip("/"))
        first = max((number(c) for c in keep), default=0) + 1
        labels = definition_labels(config["Labels"])
        for n in range(first, first + size - len(keep)):
            name = f"{found.name}-{n}"
            instance = {**config, "Labels": {**labels, LABEL_INSTANCE: str(n)}}
            self._start(self._create(name, instance), name)

    def _replace_definition(self, found: Containers, *, disabled: int | None) -> dict[str, Any]:
        """Container labels cannot change: a new definition container takes the old one's
        place with the disabled size added or dropped. Returns its create body."""
        inspected = self._inspect(found)
        labels = definition_labels(inspected["Config"]["Labels"])
        if disabled is not None:
            labels[LABEL_DISABLED_INSTANCES] = str(disabled)
        config = copy_config(inspected, labels)
        if found.definition:
            self.api.remove_container(found.definition["Id"], force=True)
        self._create(found.name, config)
        return config

    # --- one-off jobs (run-job) ---------------------------------------------------------

    def job_definition(self, job: JobRequest) -> dict[str, Any]:
        run = jobs.plan(job)
        return {
            "name": run.name,
            "container": container_config(run.workload, run.labels, JOB_RESTART_POLICY),
        }

    def start_job(self, definition: dict[str, Any]) -> JobRun:
        labels = definition["container"]["Labels"]
        run = JobRun(labels[jobs.LABEL_JOB], labels[jobs.LABEL_JOB_RUN])
        with translated(f"starting run {run.run_id} of job {run.job_id}"):
            container_id = self._create(definition["name"], definition["container"])
            try:
                self.api.start(container_id)
            except docker.errors.APIError:
                # The container keeps why (State.Error): job_status reports the run failed.
                pass
        return run

    def _job_container(self, run: JobRun) -> dict[str, Any]:
        try:
            inspected: dict[str, Any] = self.api.inspect_container(
                jobs.resource_name(run.job_id, run.run_id)
            )
        except docker.errors.NotFound:
            raise StageFailed(
                f"the container of run {run.run_id} of job {run.job_id} was removed while it ran"
            ) from None
        return inspected

    def job_status(self, run: JobRun) -> JobStatus:
        with translated(f"reading run {run.run_id} of job {run.job_id}"):
            state = self._job_container(run)["State"]
        status, code, error = state["Status"], state["ExitCode"], state.get("Error")
        # A container that could not start stays "created", with why in Error.
        if status == "created" and error:
            return JobStatus(
                status, finished=True, exit_code=code, message=f"cannot start: {error}"
            )
        if status not in ("exited", "dead"):
            return JobStatus(status, finished=False)
        if state.get("OOMKilled"):
            message = "killed for using more memory than its limit (--mem, mem_limit)"
        elif code != 0 or error:
            message = error or "its container exited"
        else:
            return JobStatus(status, finished=True, succeeded=True, exit_code=code)
        return JobStatus(status, finished=True, exit_code=code, message=message)

    def job_log(self, run: JobRun, offset: int) -> tuple[str, int]:
        with translated(f"reading the log of run {run.run_id} of job {run.job_id}"):
            data: bytes = self.api.logs(
                jobs.resource_name(run.job_id, run.run_id), stdout=True, stderr=False
            )
        return jobs.decoded_from(data, offset)

    def job_file(self, run: JobRun, path: str) -> bytes | None:
        with translated(f"copying {path} out of run {run.run_id} of job {run.job_id}"):
            return jobs.read_file(self.api, self._job_container(run)["Id"], path)

    def stop_job(self, run: JobRun) -> None:
        with translated(f"stopping run {run.run_id} of job {run.job_id}"):
            container = self._job_container(run)
            # Its own grace, passed on so that the SDK waits that long for the answer.
            self.api.stop(container["Id"], timeout=container["Config"].get("StopTimeout"))

    def finish_job(self, run: JobRun) -> None:
        with translated(f"removing run {run.run_id} of job {run.job_id}"):
            try:
                self.api.remove_container(jobs.resource_name(run.job_id, run.run_id), force=True)
            except docker.errors.NotFound:
                pass
