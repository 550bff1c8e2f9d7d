"""An emulator of the Marathon v2 REST API, with deployments that take time."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import events
from .apps import (
    READ_ONLY_FIELDS,
    InvalidApp,
    InvalidJson,
    canonical_id,
    check_body,
    detail,
    merge,
    normalize,
    service_port_conflicts,
    validate,
)
from .auth import Authenticator, AuthMode
from .events import EventBus
from .messages import HttpError, Request, Response, html_page
from .render import (
    app_json,
    deployment_json,
    group_json,
    info_json,
    resolve_app_embeds,
    resolve_group_embeds,
    task_json,
)
from .server import Handler, HttpEmulator
from .state import App, AppLocked, Deployment, MarathonState, Timings

Validator = Callable[[dict[str, Any]], None]

LOCKED_MESSAGE = (
    "App is locked by one or more deployments. Override with the option '?force=true'. "
    "View details at '/v2/deployments/<DEPLOYMENT_ID>'."
)
DEPLOYMENT_HEADER = "Marathon-Deployment-Id"
APP_ID = r"(?P<id>.+?)"


def _error(status: int, message: str, **extra: Any) -> HttpError:
    return HttpError(Response(status, {"message": message, **extra}))


def _unknown_app(app_id: str) -> HttpError:
    return _error(404, f"App '{app_id}' does not exist")


class MarathonEmulator(HttpEmulator):
    """Marathon over real HTTP, also reachable as DC/OS serves it (/service/marathon).

    State advances lazily: each request first replays what happened since the previous
    one (tasks starting, passing health checks, failing, deployments finishing). While an
    event stream (/v2/events) is attached, a clock thread also replays wake-ups as they
    fall due, so that their events go out when they happen.
    """

    service_prefixes = ("/service/marathon",)

    def __init__(
        self,
        deploy_seconds: float = 0.3,
        task_start_seconds: float = 0.2,
        health_seconds: float = 0.2,
        auth: AuthMode = None,
        admin_router: bool = False,
        *,
        failure_seconds: float = 0.1,
        backoff_seconds: float = 0.1,
    ) -> None:
        super().__init__(Authenticator(auth, admin_router))
        timings = Timings(
            deploy_seconds, task_start_seconds, health_seconds, failure_seconds, backoff_seconds
        )
        self._lock = threading.Lock()
        self._state = MarathonState(timings, time.monotonic())
        self._bus = EventBus()
        # False: /v2/events answers 404, as behind a proxy that does not route it.
        self.events_enabled = True
        self._clock: threading.Thread | None = None
        self._clock_changed = threading.Event()
        self._stopping = False
        # The same set objects the scheduler reads: tests add images to them.
        self.failing_images: set[str] = self._state.failing_images
        self.unhealthy_images: set[str] = self._state.unhealthy_images
        # Run on every app body received in POST/PUT/PATCH (with the id filled in from
        # the URL); a ValueError becomes a 422.
        self.validators: list[Validator] = []
        self._add_routes()

    # -- lifecycle -------------------------------------------------------------------

    def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> str:
        url = super().start(port, tls)
        self._stopping = False
        self._clock = threading.Thread(target=self._keep_time, name="MarathonClock", daemon=True)
        self._clock.start()
        return url

    def stop(self) -> None:
        if self._clock is not None:
            self._stopping = True
            self._clock_changed.set()
            self._clock.join()
            self._clock = None
        super().stop()

    # -- test-facing helpers ---------------------------------------------------------

    def deployments_finished_at(self) -> list[float]:
        """The time.monotonic() moments at which deployments finished, oldest first."""
        with self._current() as state:
            return list(state.finished_deployments)

    def expire_tokens(self) -> None:
        """Invalidate every token issued by the login endpoint; clients must log in again."""
        self.authenticator.expire_tokens()

    def add_app(self, definition: dict[str, Any], running: bool = True) -> dict[str, Any]:
        """Store an app at once, without a deployment.

        running=True: its tasks are already running (and healthy when it has health
        checks). running=False: its tasks are launched now and go through staging and
        health checks, still without a deployment. Computed fields (tasks, counts, ...)
        are ignored, so apps from a GET dump can be seeded; `version`/`versionInfo` are
        kept when given. Raises ValueError for a definition Marathon would reject.
        """
        fields = {k: v for k, v in definition.items() if k not in READ_ONLY_FIELDS}
        try:
            check_body(fields, require_id=True)
        except (InvalidJson, InvalidApp) as error:
            raise ValueError(f"invalid app definition: {error.details}") from error
        normalized = normalize(fields)
        errors = validate(normalized)
        if errors:
            raise ValueError(f"invalid app definition: {errors}")
        with self._current() as state:
            app = state.seed(
                normalized, running, definition.get("version"), definition.get("versionInfo") or {}
            )
            return app_json(state, app, state.now, {"counts", "deployments", "tasks"})

    def load_groups(self, root_group: dict[str, Any]) -> None:
        """Seed from a GET /v2/groups?embed=group.apps dump: every group, every app running."""
        with self._current() as state:
            state.add_group(canonical_id(root_group.get("id", "/")), root_group.get("version"))
        for app in root_group.get("apps") or []:
            self.add_app(app, running=True)
        for group in root_group.get("groups") or []:
            self.load_groups(group)

    def app(self, app_id: str) -> dict[str, Any] | None:
        """The app as GET /v2/apps/{id} answers it, or None."""
        with self._current() as state:
            app = state.apps.get(canonical_id(app_id))
            if app is None:
                return None
            return copy.deepcopy(
                app_json(
                    state, app, state.now, {"counts", "tasks", "lastTaskFailure", "deployments"}
                )
            )

    def app_changes(self) -> list[Request]:
        """Recorded changes to apps other than treadle's cluster lease records (apps named
        `<cluster>.lease...`, made and deleted around every stage that changes a cluster)."""

        def lease(request: Request) -> bool:
            app_id = request.path.removeprefix("/v2/apps")
            if request.method == "POST" and isinstance(request.body, dict):
                app_id = str(request.body.get("id", ""))
            return ".lease" in app_id.rsplit("/", 1)[-1]

        return [r for r in self.mutating_requests() if not lease(r)]

    # -- plumbing --------------------------------------------------------------------

    def is_public(self, request: Request) -> bool:
        # Marathon answers /ping without credentials; Admin Router guards everything.
        behind_admin_router = self.authenticator.admin_router
        return super().is_public(request) or (request.path == "/ping" and not behind_admin_router)

    @contextlib.contextmanager
    def _current(self, *, by_clock: bool = False) -> Iterator[MarathonState]:
        """The state, locked and brought up to now; the events of what happens meanwhile
        go out on the event streams when done."""
        with self._lock:
            self._state.advance(time.monotonic())
            try:
                yield self._state
            finally:
                self._bus.publish(self._state.events)
                self._state.events = []
        if not by_clock:
            # New wake-ups may fall due before the one the clock sleeps until.
            self._clock_changed.set()

    def _keep_time(self) -> None:
        """While an event stream is attached, replay each wake-up when it falls due."""
        while not self._stopping:
            self._clock_changed.clear()
            due = None
            if self._bus.attached:
                with self._current(by_clock=True) as state:
                    due = state.next_wakeup()
            self._clock_changed.wait(None if due is None else max(0.0, due - time.monotonic()))

    def _add(self, method: str, pattern: str, handler: Handler) -> None:
        def locked(request: Request, match: re.Match[str]) -> Response:
            with self._current():
                return handler(request, match)

        self.router.add(method, pattern, locked)

    def _add_routes(self) -> None:
        self._add("GET", r"/ping", lambda request, match: Response(200, "pong"))
        self._add("GET", r"/v2/info", self._info)
        self._add("GET", r"/v2/apps/?", self._list_apps)
        self._add("POST", r"/v2/apps/?", self._create_app)
        self._add("GET", rf"/v2/apps/{APP_ID}/tasks", self._app_tasks)
        self._add("GET", rf"/v2/apps/{APP_ID}/versions", self._app_versions)
        self._add("GET", rf"/v2/apps/{APP_ID}/versions/(?P<version>[^/]+)", self._app_version)
        self._add("POST", rf"/v2/apps/{APP_ID}/restart", self._restart_app)
        self._add("GET", rf"/v2/apps/{APP_ID}", self._show_app)
        self._add("PUT", rf"/v2/apps/{APP_ID}", self._put_app)
        self._add("PATCH", rf"/v2/apps/{APP_ID}", self._patch_app)
        self._add("DELETE", rf"/v2/apps/{APP_ID}", self._delete_app)
        self._add("GET", r"/v2/groups/?", self._show_group)
        self._add("GET", r"/v2/groups/(?P<id>.+)", self._show_group)
        self._add("POST", r"/v2/tasks/delete", self._delete_tasks)
        self._add("GET", r"/v2/deployments/?", self._list_deployments)
        self._add("DELETE", r"/v2/deployments/(?P<id>[^/]+)", self._delete_deployment)
        self.router.add("GET", r"/v2/events", self._events)

    # -- request bodies --------------------------------------------------------------

    @staticmethod
    def _json_body(request: Request) -> Any:
        try:
            return json.loads(request.raw_body)
        except ValueError as error:
            raise _error(400, "Invalid JSON", details=[detail("/", str(error))]) from error

    def _definition(
        self, body: Any, app_id: str | None, current: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Check a body and turn it into the definition to store (merged over `current`)."""
        try:
            check_body(body, require_id=app_id is None)
        except InvalidJson as error:
            raise HttpError(Response(400, error.body())) from error
        except InvalidApp as error:
            raise HttpError(Response(422, error.body())) from error
        fields = dict(body) if app_id is None else {**body, "id": app_id}
        definition = normalize(merge(current, fields) if current is not None else fields)
        errors = validate(definition) or service_port_conflicts(
            definition, (a.definition for a in self._state.apps.values())
        )
        if errors:
            raise HttpError(Response(422, InvalidApp(errors).body()))
        self._run_validators(fields)
        return definition

    def _run_validators(self, fields: dict[str, Any]) -> None:
        for validator in list(self.validators):
            try:
                validator(copy.deepcopy(fields))
            except ValueError as error:
                raise HttpError(
                    Response(422, InvalidApp([detail("/", str(error))]).body())
                ) from error

    def _deploy(
        self, app_id: str, target: dict[str, Any] | None, force: bool, restart: bool = False
    ) -> Deployment:
        try:
            return self._state.deploy(app_id, target, force, restart)
        except AppLocked as locked:
            raise _error(
                409, LOCKED_MESSAGE, deployments=[{"id": i} for i in locked.deployment_ids]
            ) from locked

    @staticmethod
    def _deployment_result(deployment: Deployment, status: int = 200, **headers: str) -> Response:
        return Response(
            status,
            {"version": deployment.version, "deploymentId": deployment.id},
            headers={DEPLOYMENT_HEADER: deployment.id, **headers},
        )

    def _existing(self, raw_id: str) -> App:
        app_id = canonical_id(raw_id)
        app = self._state.apps.get(app_id)
        if app is None:
            raise _unknown_app(app_id)
        return app

    # -- handlers --------------------------------------------------------------------

    def _info(self, request: Request, match: re.Match[str]) -> Response:
        return Response(200, info_json(self.url.removeprefix("http://")))

    def _list_apps(self, request: Request, match: re.Match[str]) -> Response:
        # Counts and deployments are always embedded ("deprecated" in Marathon, never removed).
        embeds = resolve_app_embeds(request.query.get("embed", [])) | {"counts", "deployments"}
        apps = sorted(self._state.apps.values(), key=lambda a: a.id)
        id_filter, cmd_filter = request.param("id"), request.param("cmd")
        if id_filter:
            apps = [a for a in apps if id_filter.lower() in a.id.lower()]
        if cmd_filter:
            apps = [a for a in apps if cmd_filter.lower() in (a.definition["cmd"] or "").lower()]
        now = self._state.now
        return Response(200, {"apps": [app_json(self._state, a, now, embeds) for a in apps]})

    def _show_app(self, request: Request, match: re.Match[str]) -> Response:
        embeds = resolve_app_embeds(request.query.get("embed", [])) | {
            "counts",
            "tasks",
            "lastTaskFailure",
            "deployments",
        }
        raw_id, now = match["id"], self._state.now
        if raw_id == "*" or raw_id.endswith("/*"):
            # /v2/apps/<group>/* lists the group's apps transitively, under the key "*".
            group_id = canonical_id(raw_id[:-1])
            if group_id not in self._state.groups:
                raise _error(404, f"Group '{group_id}' does not exist")
            prefix = group_id.rstrip("/") + "/"
            apps = sorted(
                (a for a in self._state.apps.values() if a.id.startswith(prefix)),
                key=lambda a: a.id,
            )
            return Response(200, {"*": [app_json(self._state, a, now, embeds) for a in apps]})
        return Response(200, {"app": app_json(self._state, self._existing(raw_id), now, embeds)})

    def _app_tasks(self, request: Request, match: re.Match[str]) -> Response:
        app = self._existing(match["id"])
        tasks = sorted(app.tasks, key=lambda x: x.staged_at)
        return Response(
            200, {"tasks": [task_json(self._state, app, x, self._state.now) for x in tasks]}
        )

    def _app_versions(self, request: Request, match: re.Match[str]) -> Response:
        app = self._existing(match["id"])
        return Response(200, {"versions": list(reversed(app.history))})

    def _app_version(self, request: Request, match: re.Match[str]) -> Response:
        app = self._existing(match["id"])
        snapshot = app.history.get(match["version"])
        if snapshot is None:
            raise _error(404, f"App '{app.id}' does not exist in version {match['version']}")
        return Response(200, copy.deepcopy(snapshot))

    def _create_app(self, request: Request, match: re.Match[str]) -> Response:
        definition = self._definition(self._json_body(request), None, None)
        app_id = definition["id"]
        if app_id in self._state.apps:
            raise _error(409, f"An app with id [{app_id}] already exists.")
        deployment = self._deploy(app_id, definition, request.flag("force", False))
        # Like Marathon, answer with the app as created: nothing launched yet.
        body = app_json(self._state, self._state.apps[app_id], self._state.now, set())
        body.update(
            tasksStaged=0,
            tasksRunning=0,
            tasksHealthy=0,
            tasksUnhealthy=0,
            deployments=[{"id": deployment.id}],
            tasks=[],
        )
        return Response(
            201, body, headers={"Location": f"/v2/apps{app_id}", DEPLOYMENT_HEADER: deployment.id}
        )

    def _put_app(self, request: Request, match: re.Match[str]) -> Response:
        # Marathon's PUT is a partial update unless ?partialUpdate=false.
        return self._update(
            request, match, partial=request.flag("partialUpdate", True), may_create=True
        )

    def _patch_app(self, request: Request, match: re.Match[str]) -> Response:
        return self._update(request, match, partial=True, may_create=False)

    def _update(
        self, request: Request, match: re.Match[str], partial: bool, may_create: bool
    ) -> Response:
        app_id = canonical_id(match["id"])
        body = self._json_body(request)
        app = self._state.apps.get(app_id)
        if app is None and not may_create:
            raise _unknown_app(app_id)
        if app is not None and isinstance(body, dict) and body.get("version") is not None:
            target = self._rollback_target(app, body)
        else:
            target = self._definition(
                body, app_id, app.definition if app is not None and partial else None
            )
        deployment = self._deploy(app_id, target, request.flag("force", False))
        if app is None:
            return self._deployment_result(deployment, 201, Location=f"/v2/apps{app_id}")
        return self._deployment_result(deployment)

    def _rollback_target(self, app: App, body: dict[str, Any]) -> dict[str, Any]:
        """A body with `version` restores that stored version; its other fields are ignored."""
        try:
            check_body(body, require_id=False)
        except InvalidJson as error:
            raise HttpError(Response(400, error.body())) from error
        except InvalidApp as error:
            raise HttpError(Response(422, error.body())) from error
        self._run_validators({**body, "id": app.id})
        snapshot = app.history.get(body["version"])
        if snapshot is None:
            raise _unknown_app(app.id)
        return {
            k: copy.deepcopy(v)
            for k, v in snapshot.items()
            if k not in ("ports", "version", "versionInfo")
        }

    def _delete_app(self, request: Request, match: re.Match[str]) -> Response:
        app = self._existing(match["id"])
        # force defaults to true here: deleting cancels deployments of the app.
        return self._deployment_result(self._deploy(app.id, None, request.flag("force", True)))

    def _delete_tasks(self, request: Request, match: re.Match[str]) -> Response:
        body = self._json_body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _error(400, "Invalid JSON: ids must be a list of task ids")
        try:
            killed = self._state.kill_tasks(ids, request.flag("scale", False))
        except KeyError as unknown:
            raise _error(400, f"Invalid task id {unknown.args[0]}") from None
        except AppLocked as locked:
            raise _error(
                409, LOCKED_MESSAGE, deployments=[{"id": i} for i in locked.deployment_ids]
            ) from locked
        if killed and isinstance(killed[0], Deployment):
            return self._deployment_result(killed[0])
        now = self._state.now
        tasks = [task_json(self._state, self._state.apps[t.app_id], t, now) for t in killed]
        return Response(200, {"tasks": tasks})

    def _restart_app(self, request: Request, match: re.Match[str]) -> Response:
        app = self._existing(match["id"])
        target = copy.deepcopy(app.definition)
        return self._deployment_result(
            self._deploy(app.id, target, request.flag("force", False), restart=True)
        )

    def _show_group(self, request: Request, match: re.Match[str]) -> Response:
        group_id = canonical_id(match.groupdict().get("id") or "/")
        if group_id not in self._state.groups:
            raise _error(404, f"Group '{group_id}' does not exist")
        group_embeds, app_embeds = resolve_group_embeds(request.query.get("embed", []))
        return Response(
            200, group_json(self._state, group_id, self._state.now, group_embeds, app_embeds)
        )

    def _list_deployments(self, request: Request, match: re.Match[str]) -> Response:
        return Response(200, [deployment_json(d) for d in self._state.deployments.values()])

    def _delete_deployment(self, request: Request, match: re.Match[str]) -> Response:
        deployment = self._state.deployments.get(match["id"])
        if deployment is None:
            raise _error(404, f"DeploymentPlan {match['id']} does not exist")
        if request.flag("force", False):
            self._state.cancel(deployment)
            return Response(202)
        return self._deployment_result(self._state.rollback(deployment))

    def _events(self, request: Request, match: re.Match[str]) -> Response:
        """The event stream: the events of the types asked for (`event_type`, repeatable;
        none: all), from the moment of attaching, until the client or the emulator goes."""
        if not self.events_enabled:
            return html_page(404, "Not Found")
        if "text/event-stream" not in request.headers.get("accept", ""):
            return html_page(405, "Method Not Allowed")
        stream = self.open_stream()
        self._bus.attach(stream, request.query.get("event_type", []))
        with self._current() as state:
            # Marathon announces every attach to every stream, this one included.
            state.events.append(events.stream_attached("127.0.0.1", state.timestamp(state.now)))
        return Response(
            200, headers=dict(events.SSE_HEADERS), content_type=events.SSE_TYPE, stream=stream
        )
