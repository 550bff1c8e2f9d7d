"""DC/OS Marathon: a server group is an app whose id is the region's group path plus the
server group's name (`/prod/us-east/web-prod-v003`)."""

from __future__ import annotations

import ssl
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from treadle.console import Console
from treadle.errors import Conflict, InputError, StageFailed
from treadle.providers import Connection
from treadle.providers.base import LABEL_CREATED_AT, LABEL_DISABLED_INSTANCES, Health, NewServerGroup, ServerGroup
from treadle.providers.marathon import apps
from treadle.providers.marathon.auth import LOGIN_PATH, Auth, BasicAuth, ServiceAccountAuth, TokenAuth
from treadle.providers.marathon.client import MarathonClient, check_url
from treadle.waiting import Deadline

MARATHON_UNDER_DCOS = "/service/marathon"
# Tasks of the current version that failed since the stage began before it gives up
# (Marathon itself would keep relaunching them with backoff).
FAILURES_BEFORE_GIVING_UP = 3
HEALTH_EMBEDS = [("embed", e) for e in ("app.tasks", "app.counts", "app.deployments", "app.lastTaskFailure")]

__all__ = ["MarathonProvider"]


def connect(connection: Connection, *, deadline: Deadline, console: Console) -> MarathonClient:
    if connection.marathon_url:
        base = check_url(connection.marathon_url, "--marathon-url")
    elif connection.dcos_url:
        base = check_url(connection.dcos_url, "--dcos-url") + MARATHON_UNDER_DCOS
    else:
        raise InputError("the marathon provider needs --marathon-url or --dcos-url")
    verify: bool | ssl.SSLContext = True
    if connection.insecure:
        verify = False
    elif connection.ca_cert:
        try:
            verify = ssl.create_default_context(cafile=connection.ca_cert)
        except FileNotFoundError:
            raise InputError(f"--ca-cert {connection.ca_cert}: no such file") from None
        except (OSError, ssl.SSLError) as e:
            raise InputError(f"--ca-cert {connection.ca_cert}: not a PEM CA bundle ({e})") from None
    client = MarathonClient(base, auth=Auth(), verify=verify, deadline=deadline, console=console)
    client.auth = choose_auth(connection, base, client)
    return client


def choose_auth(connection: Connection, base: str, client: MarathonClient) -> Auth:
    if connection.service_account_uid or connection.service_account_key:
        if not (connection.service_account_uid and connection.service_account_key):
            raise InputError("a service account needs both --service-account-uid and --service-account-key")
        root = check_url(connection.dcos_url, "--dcos-url") if connection.dcos_url else base.removesuffix(MARATHON_UNDER_DCOS)
        return ServiceAccountAuth(
            connection.service_account_uid,
            connection.service_account_key,
            root + LOGIN_PATH,
            post=client.http.post,
        )
    if connection.token:
        return TokenAuth(connection.token)
    if connection.username or connection.password:
        if not (connection.username and connection.password):
            raise InputError("HTTP basic auth needs both --username and --password")
        return BasicAuth(connection.username, connection.password)
    return Auth()


class MarathonProvider:
    name = "marathon"
    default_region = "/"

    def __init__(self, connection: Connection, *, deadline: Deadline, console: Console) -> None:
        self.client = connect(connection, deadline=deadline, console=console)
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        # Failed task ids of each app seen since the stage began.
        self._failures: dict[str, set[str]] = {}
        # Apps this stage created: a deployment left on one of them is this stage's own
        # (a rollout that failed) and may be overridden; anyone else's lock is waited out.
        self._created: set[str] = set()

    def close(self) -> None:
        self.client.close()

    def check_region(self, region: str) -> str:
        return apps.check_region(region)

    def _path(self, app_id: str) -> str:
        return "/v2/apps" + quote(app_id)

    def server_groups(self, region: str) -> list[ServerGroup]:
        path = "/v2/groups" if region == "/" else "/v2/groups" + quote(region)
        group = self.client.get(path, params={"embed": "group.apps"}, missing_ok=True)
        if not group:
            return []
        found = (apps.to_server_group(app) for app in apps.apps_of_group(group))
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
        answer = self.client.get(self._path(group.id or apps.app_id(group.region, group.name)), missing_ok=True)
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
        self.client.request("DELETE", self._path(group.id or apps.app_id(group.region, group.name)), missing_ok=True)

    def health(self, group: ServerGroup) -> Health:
        path = self._path(group.id or apps.app_id(group.region, group.name))
        answer = self.client.get(path, params=HEALTH_EMBEDS, missing_ok=True)
        if not answer:
            raise StageFailed(f"{group.name} no longer exists in {group.region}")
        app = answer["app"]
        desired = int(app.get("instances") or 0)
        config = (app.get("versionInfo") or {}).get("lastConfigChangeAt") or app.get("version") or ""
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
