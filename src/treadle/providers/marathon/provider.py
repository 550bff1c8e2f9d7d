"""DC/OS Marathon: a server group is an app whose id is the region's group path plus the
server group's name (`/prod/us-east/web-prod-v003`). One-off jobs (run-job) run on the
cluster's Metronome (treadle.providers.marathon.metronome)."""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from treadle.console import Console
from treadle.errors import Conflict, InputError, StageFailed
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
from treadle.providers.marathon import apps
from treadle.providers.marathon.dcos import Session
from treadle.providers.marathon.http import DcosClient
from treadle.providers.marathon.marathon_events import EventStream
from treadle.providers.marathon.metronome import MetronomeJobs
from treadle.providers.marathon.sandbox import Sandbox
from treadle.waiting import Deadline, Wakeup

# Tasks of the current version that failed since the stage began before it gives up
# (Marathon itself would keep relaunching them with backoff).
FAILURES_BEFORE_GIVING_UP = 3
HEALTH_EMBEDS = [
    ("embed", e) for e in ("app.tasks", "app.counts", "app.deployments", "app.lastTaskFailure")
]

__all__ = ["MarathonProvider"]


class MarathonProvider:
    name = "marathon"
    default_region = "/"

    def __init__(self, connection: Connection, *, deadline: Deadline, console: Console) -> None:
        self.session = Session(connection, deadline=deadline, console=console)
        urls = self.session.urls
        self.jobs = MetronomeJobs(
            self.session.client(urls.metronome, "Metronome") if urls.metronome else None,
            Sandbox(self.session.client(urls.root, "DC/OS")) if urls.root else None,
            console,
        )
        self.started_at = (
            datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        # Failed task ids of each app seen since the stage began.
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
    def events(self) -> EventStream:
        """Marathon's event stream, followed from the first wait on."""
        return EventStream(self.client, self.session.console)

    def close(self) -> None:
        if "events" in self.__dict__:
            self.events.close()
        self.jobs.close()
        self.session.close()

    def watch(self, group: ServerGroup) -> AbstractContextManager[Wakeup]:
        return self.events.watching(group.id or apps.app_id(group.region, group.name))

    def check_region(self, region: str) -> str:
        return apps.check_region(region)

    def _path(self, app_id: str) -> str:
        return "/v2/apps" + quote(app_id)

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
        return apps.build_definition(new)

    def create(self, region: str, definition: dict[str, Any]) -> ServerGroup:
        try:
            self.client.request("POST", "/v2/apps", json=definition)
        except Conflict:
            # A retried POST whose first attempt got through finds its own app: adopt it.
            existing = self.client.get(self._path(definition["id"]), missing_ok=True)
            ours = definition["labels"][LABEL_CREATED_AT]
            if not existing or existing["app"].get("labels", {}).get(LABEL_CREATED_AT) != ours:
                raise
        self._created.add(definition["id"])
        created = self.server_group(region, definition["id"].rsplit("/", 1)[-1])
        if created is None:
            raise StageFailed(f"Marathon accepted {definition['id']} but does not list it")
        return created

    def _app(self, group: ServerGroup) -> dict[str, Any]:
        answer = self.client.get(
            self._path(group.id or apps.app_id(group.region, group.name)), missing_ok=True
        )
        if not answer:
            raise StageFailed(f"{group.name} no longer exists in {group.region}")
        app: dict[str, Any] = answer["app"]
        return app

    def _update(self, group: ServerGroup, body: dict[str, Any]) -> None:
        app_id = group.id or apps.app_id(group.region, group.name)
        force = {"force": "true"} if app_id in self._created else None
        self.client.request("PUT", self._path(app_id), params=force, json=body)

    def resize(self, group: ServerGroup, instances: int) -> None:
        self._update(group, {"instances": instances})

    def disable(self, group: ServerGroup, remember: int) -> None:
        labels = {**self._app(group).get("labels", {}), LABEL_DISABLED_INSTANCES: str(remember)}
        # Marathon's PUT is a partial update: only the fields sent change.
        self._update(group, {"instances": 0, "labels": labels})

    def enable(self, group: ServerGroup) -> None:
        labels = dict(self._app(group).get("labels") or {})
        remembered = labels.pop(LABEL_DISABLED_INSTANCES, None)
        body: dict[str, Any] = {"labels": labels}
        if remembered and remembered.isdigit():
            body["instances"] = int(remembered)
        self._update(group, body)

    def destroy(self, group: ServerGroup) -> None:
        self.client.request(
            "DELETE", self._path(group.id or apps.app_id(group.region, group.name)), missing_ok=True
        )

    def health(self, group: ServerGroup) -> Health:
        path = self._path(group.id or apps.app_id(group.region, group.name))
        answer = self.client.get(path, params=HEALTH_EMBEDS, missing_ok=True)
        if not answer:
            raise StageFailed(f"{group.name} no longer exists in {group.region}")
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
        return Health(
            desired=desired,
            running=len(running),
            healthy=healthy,
            settled=not app.get("deployments") and len(tasks) == len(current),
            failure=self._failure(app, config),
        )

    def _failure(self, app: dict[str, Any], config: str) -> str | None:
        """Marathon relaunches failing tasks forever; give up once several tasks of the
        current version have failed since this stage began."""
        failure = app.get("lastTaskFailure") or {}
        if not failure or str(failure.get("timestamp") or "") < self.started_at:
            return None
        if str(failure.get("version") or "") < config:
            return None
        seen = self._failures.setdefault(app["id"], set())
        seen.add(str(failure.get("taskId")))
        if len(seen) < FAILURES_BEFORE_GIVING_UP:
            return None
        return f"{len(seen)} tasks failed, the last with {failure.get('state')}: {failure.get('message')}"

    # -- one-off jobs, on Metronome ----------------------------------------------------

    def job_definition(self, job: JobRequest) -> dict[str, Any]:
        return self.jobs.definition(job)

    def start_job(self, definition: dict[str, Any]) -> JobRun:
        return self.jobs.start(definition)

    def job_status(self, run: JobRun) -> JobStatus:
        return self.jobs.status(run)

    def job_log(self, run: JobRun, offset: int) -> tuple[str, int]:
        return self.jobs.log(run, offset)

    def job_file(self, run: JobRun, path: str) -> bytes | None:
        return self.jobs.file(run, path)

    def stop_job(self, run: JobRun) -> None:
        self.jobs.stop(run)

    def finish_job(self, run: JobRun) -> None:
        """Metronome keeps the job for the next run and the run in its history."""

    def watch_job(self, run: JobRun) -> AbstractContextManager[Wakeup | None]:
        return self.jobs.watch(run)
