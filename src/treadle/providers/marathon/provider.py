"""DC/OS Marathon: a server group is an app whose id is the region's group path plus the
server group's name (`/prod/us-east/web-prod-v003`). One-off jobs (run-job) run on the
cluster's Metronome (treadle.providers.marathon.metronome)."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from treadle.console import Console
from treadle.errors import AlreadyExists, Conflict, InputError, ServerGroupGone
from treadle.naming import Cluster
from treadle.providers.base import (
    DECREMENT_CHOSEN,
    EVENTS,
    JOB_EVENTS,
    JOBS,
    LABEL_LEASE_EXPIRES,
    LABEL_LEASE_ID,
    TERMINATE,
    Health,
    Instance,
    JobRequest,
    JobRun,
    JobStatus,
    Lease,
    LeaseKey,
    LogStream,
    NewServerGroup,
    Records,
    ServerGroup,
    merged,
)
from treadle.providers.marathon import apps, balancers
from treadle.providers.marathon.dcos import Session
from treadle.providers.marathon.http import DcosClient
from treadle.providers.marathon.settings import MarathonSettings
from treadle.waiting import Deadline, Wakeup

if TYPE_CHECKING:
    from treadle.providers.marathon.marathon_events import EventStream
    from treadle.providers.marathon.metronome import MetronomeJobs

HEALTH_EMBEDS = [
    ("embed", e) for e in ("app.tasks", "app.counts", "app.deployments", "app.lastTaskFailure")
]
# A lease is an app of no instances: never launched, it only has to be a valid app.
LEASE_APP = {"cmd": "sleep 3600", "instances": 0, "cpus": 0.01, "mem": 32, "disk": 0}

__all__ = ["MarathonProvider"]


class MarathonProvider:
    name = "marathon"
    default_region = "/"
    capabilities = frozenset({JOBS, EVENTS, JOB_EVENTS, TERMINATE, DECREMENT_CHOSEN})

    def __init__(
        self,
        settings: MarathonSettings,
        *,
        deadline: Deadline,
        console: Console,
        request_timeout: float = 30.0,
    ) -> None:
        self.session = Session(
            settings, deadline=deadline, console=console, request_timeout=request_timeout
        )
        self.started_at = (
            datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        # Failed task ids of each app's configuration seen since the stage began.
        self._failures: dict[str, set[str]] = {}
        # Apps this stage created: a deployment left on one of them is this stage's own
        # (a rollout that failed) and may be overridden; anyone else's lock is waited out.
        self._created: set[str] = set()

    @functools.cached_property
    def client(self) -> DcosClient:
        """Marathon, asked for by the server-group stages only: run-job needs none."""
        if not self.session.urls.marathon:
            raise InputError("server groups live in Marathon: give --marathon-url or --dcos-url")
        return self.session.client(self.session.urls.marathon, "Marathon")

    @functools.cached_property
    def jobs(self) -> MetronomeJobs:
        """Metronome, and the Mesos sandbox of its runs: asked for by run-job only."""
        from treadle.providers.marathon.metronome import MetronomeJobs
        from treadle.providers.marathon.sandbox import Sandbox

        urls = self.session.urls
        return MetronomeJobs(
            self.session.client(urls.metronome, "Metronome") if urls.metronome else None,
            Sandbox(self.session.client(urls.root, "DC/OS")) if urls.root else None,
            self.session.console,
        )

    @functools.cached_property
    def events(self) -> EventStream:
        """Marathon's event stream, followed from the first wait on."""
        from treadle.providers.marathon.marathon_events import EventStream

        return EventStream(self.client, self.session.console)

    def close(self) -> None:
        for stream in ("events", "jobs"):
            if stream in self.__dict__:
                getattr(self, stream).close()
        self.session.close()

    def watch(self, group: ServerGroup) -> AbstractContextManager[Wakeup | None]:
        return self.events.watching(self._id(group))

    def check_region(self, region: str) -> str:
        return apps.check_region(region)

    def _path(self, app_id: str) -> str:
        return "/v2/apps" + quote(app_id)

    def _id(self, group: ServerGroup) -> str:
        return group.id or apps.app_id(group.region, group.name)

    def server_groups(self, region: str, cluster: Cluster | None = None) -> list[ServerGroup]:
        path = "/v2/groups" if region == "/" else "/v2/groups" + quote(region)
        group = self.client.get(path, params={"embed": "group.apps"}, missing_ok=True)
        if not group:
            return []
        found = (apps.to_server_group(app) for app in apps.apps_of_group(group, cluster))
        return [g for g in found if g is not None]

    def server_group(self, region: str, name: str) -> ServerGroup | None:
        answer = self.client.get(self._path(apps.app_id(region, name)), missing_ok=True)
        return apps.to_server_group(answer["app"]) if answer else None

    def definition(self, new: NewServerGroup) -> dict[str, Any]:
        definition = apps.build_definition(new)
        balancers.keep_conventions(definition, new)
        return definition

    def create(self, region: str, definition: dict[str, Any]) -> ServerGroup:
        try:
            self.client.request("POST", "/v2/apps", json=definition)
        except Conflict as e:
            # Not locked (that is retried): an app of that id exists.
            raise AlreadyExists(str(e)) from None
        self._created.add(definition["id"])
        # What Marathon took is what was sent: no need to read it back.
        created = apps.to_server_group(definition)
        assert created is not None
        return created

    def _update(self, group: ServerGroup, body: dict[str, Any]) -> None:
        app_id = self._id(group)
        force = {"force": "true"} if app_id in self._created else None
        self.client.request("PUT", self._path(app_id), params=force, json=body)

    def _body(self, group: ServerGroup, records: Records, **fields: Any) -> dict[str, Any]:
        """A partial update: only the fields sent change; labels are sent whole."""
        if records:
            fields["labels"] = merged(group.labels, records)
        return fields

    def resize(self, group: ServerGroup, instances: int) -> None:
        self._update(group, {"instances": instances})

    def disable(self, group: ServerGroup, records: Records, *, keep_running: bool = False) -> None:
        # Marathon routes by labels (marathon-lb, Traefik), which cannot change while
        # tasks run: no alias to leave, so nothing keeps running (the stage refuses
        # --keep-running here).
        self._update(group, self._body(group, records, instances=0))

    def rotated_out(self, group: ServerGroup) -> bool:
        """Load balancers route an app by its labels, which cannot change while its tasks
        run; marathon-lb takes a group of a deployment group out of rotation by itself once
        a newer one is healthy (treadle.providers.marathon.balancers)."""
        return balancers.in_deployment_group(group.labels)

    def enable(self, group: ServerGroup, instances: int, records: Records) -> None:
        self._update(group, self._body(group, records, instances=instances))

    def join(self, group: ServerGroup) -> None:
        """No alias: marathon-lb and Traefik follow an app's healthy tasks themselves."""

    def destroy(self, group: ServerGroup) -> None:
        self.client.request("DELETE", self._path(self._id(group)), missing_ok=True)

    def instances(self, group: ServerGroup) -> list[Instance]:
        answer = self.client.get(self._path(self._id(group)) + "/tasks", missing_ok=True)
        if answer is None:
            raise ServerGroupGone(group.name, group.region)
        return [
            Instance(
                str(t["id"]), t.get("state", "TASK_RUNNING") == "TASK_RUNNING", t.get("host", "")
            )
            for t in answer.get("tasks") or []
        ]

    def terminate(self, group: ServerGroup, ids: Sequence[str], *, decrement: bool) -> None:
        # scale=true shrinks the app by the tasks killed, in the same deployment.
        scale = {"scale": "true" if decrement else "false"}
        self.client.request("POST", "/v2/tasks/delete", params=scale, json={"ids": list(ids)})

    def health(self, group: ServerGroup) -> Health:
        answer = self.client.get(self._path(self._id(group)), params=HEALTH_EMBEDS, missing_ok=True)
        if not answer:
            raise ServerGroupGone(group.name, group.region)
        app = answer["app"]
        desired = int(app.get("instances") or 0)
        config = (
            (app.get("versionInfo") or {}).get("lastConfigChangeAt") or app.get("version") or ""
        )
        tasks = app.get("tasks") or []
        current = [t for t in tasks if str(t.get("version") or "") >= config]
        running = [t for t in current if t.get("state", "TASK_RUNNING") == "TASK_RUNNING"]
        if app.get("healthChecks"):
            healthy = sum(
                1
                for t in running
                if t.get("healthCheckResults")
                and all(r.get("alive") for r in t["healthCheckResults"])
            )
        else:
            healthy = len(running)
        failed, last = self._failures_of(app, config)
        return Health(
            desired=desired,
            running=len(running),
            healthy=healthy,
            settled=not app.get("deployments") and len(tasks) == len(current),
            failed=failed,
            last_failure=last,
        )

    def _failures_of(self, app: dict[str, Any], config: str) -> tuple[int, str | None]:
        """Tasks of the current version that failed since this stage began: Marathon keeps
        only the last one, so the others seen are remembered."""
        failure = app.get("lastTaskFailure") or {}
        seen = self._failures.setdefault(f"{app['id']} {config}", set())
        if not failure or str(failure.get("timestamp") or "") < self.started_at:
            return 0, None
        if str(failure.get("version") or "") < config:
            return 0, None
        seen.add(str(failure.get("taskId")))
        return len(seen), f"{failure.get('state')}: {failure.get('message')}"

    # -- the cluster lease: an app of no instances beside the cluster's ------------------

    def _lease_path(self, key: LeaseKey) -> str:
        name = f"{key.cluster}.lease" + (f".{key.claim}" if key.claim else "")
        return self._path(apps.app_id(key.region, name))

    def lease(self, key: LeaseKey) -> Lease | None:
        answer = self.client.get(self._lease_path(key), missing_ok=True)
        if not answer:
            return None
        labels = {str(k): str(v) for k, v in (answer["app"].get("labels") or {}).items()}
        return Lease(
            key, labels.get(LABEL_LEASE_ID, ""), labels, labels.get(LABEL_LEASE_EXPIRES, "")
        )

    def create_lease(self, key: LeaseKey, labels: Mapping[str, str], expires: str) -> Lease | None:
        record = {**labels, LABEL_LEASE_ID: os.urandom(8).hex(), LABEL_LEASE_EXPIRES: expires}
        app = {"id": self._lease_path(key).removeprefix("/v2/apps"), **LEASE_APP, "labels": record}
        try:
            self.client.request("POST", "/v2/apps", json=app)
        except Conflict:
            return None
        return Lease(key, record[LABEL_LEASE_ID], record, expires)

    def renew_lease(self, lease: Lease, expires: str) -> bool:
        current = self.lease(lease.key)
        if current is None or current.id != lease.id:
            return False
        labels = {**current.labels, LABEL_LEASE_EXPIRES: expires}
        self.client.request(
            "PUT", self._lease_path(lease.key), params={"force": "true"}, json={"labels": labels}
        )
        return True

    def delete_lease(self, lease: Lease) -> None:
        self.client.request("DELETE", self._lease_path(lease.key), missing_ok=True)

    # -- one-off jobs, on Metronome ----------------------------------------------------

    def job_definition(self, job: JobRequest) -> dict[str, Any]:
        return self.jobs.definition(job)

    def start_job(self, definition: dict[str, Any]) -> JobRun:
        return self.jobs.start(definition)

    def job_status(self, run: JobRun) -> JobStatus:
        return self.jobs.status(run)

    def job_log(self, run: JobRun, offset: int, stream: LogStream = "stdout") -> tuple[str, int]:
        return self.jobs.log(run, offset, stream)

    def job_file(self, run: JobRun, path: str) -> bytes | None:
        return self.jobs.file(run, path)

    def stop_job(self, run: JobRun) -> None:
        self.jobs.stop(run)

    def finish_job(self, run: JobRun) -> None:
        """Metronome keeps the job for the next run and the run in its history."""

    def watch_job(self, run: JobRun) -> AbstractContextManager[Wakeup | None]:
        return self.jobs.watch(run)
