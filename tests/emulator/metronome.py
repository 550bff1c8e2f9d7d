"""An emulator of DC/OS Metronome (the v1 jobs API) and of the Mesos master and agents that
run its tasks, served as DC/OS serves them: /service/metronome/v1/..., /mesos/... and
/agent/<id>/... on one server, with the login of the IAM.

What a job's task does is scripted by the test (`script`): what it prints, the files it
leaves in its sandbox, its exit status and how long it runs. A run goes INITIAL ->
STARTING -> ACTIVE over `step_seconds` each, runs for the script's seconds, ends SUCCESS
or FAILED, and from then on is only in the job's history, as with the real Metronome.

The Mesos master's event stream (POST /mesos/api/v1, SUBSCRIBE) tells each subscriber of
the moments of these timelines as they come, each on a thread of its own that sleeps
until the next moment is due or a run is started or stopped.
"""

from __future__ import annotations

import copy
import json
import random
import re
import ssl
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .auth import Authenticator, AuthMode
from .jobs import check_job, normalize
from .mesos import (
    APPLICATION_JSON,
    APPLICATION_PROTOBUF,
    CALL_TYPES,
    HEARTBEAT,
    Clock,
    MesosTask,
    Script,
    Subscription,
    accepts,
    agent_state,
    marathon_tasks,
    master_state,
    read_answer,
    recordio,
    subscribed,
    v1_state,
)
from .messages import HttpError, Request, Response, Stream, html_page
from .server import Handler, HttpEmulator
from .state import AGENTS, Agent

Validator = Callable[[dict[str, Any]], None]

JOB = r"(?P<job>[^/]+)"
RUN = r"(?P<run>[^/]+)"
AGENT = r"/agent/(?P<agent>[^/]+)"
# The master's /api/v1, which Admin Router serves at /mesos/api/v1.
OPERATOR_API = r"/mesos(/master)?/api/v1"


def _error(status: int, body: dict[str, Any]) -> HttpError:
    return HttpError(Response(status, body))


def _invalid(details: list[dict[str, Any]]) -> HttpError:
    return _error(422, {"message": "Object is not valid", "details": details})


@dataclass
class Job:
    definition: dict[str, Any]  # as GET answers it, defaults filled in
    schedules: list[dict[str, Any]]
    runs: list[JobRun] = field(default_factory=list)


@dataclass
class JobRun:
    id: str
    job_id: str
    created_at: float
    starting_at: float
    task: MesosTask | None  # None once stopped before its task was launched
    stopped_at: float | None = None

    @property
    def ended_at(self) -> float:
        if self.task is None:
            assert self.stopped_at is not None
            return self.stopped_at
        return self.task.ended_at

    def ended(self, t: float) -> bool:
        return t >= self.ended_at

    def succeeded(self) -> bool:
        return self.task is not None and not self.task.killed and self.task.script.exit_code == 0

    def status(self, t: float) -> str:
        if self.ended(t):
            return "SUCCESS" if self.succeeded() else "FAILED"
        if self.task is not None and t >= self.task.staged_at:
            return "ACTIVE"
        return "STARTING" if t >= self.starting_at else "INITIAL"

    def launched(self, t: float) -> bool:
        return self.task is not None and t >= self.task.staged_at


def run_id(wall: float) -> str:
    """Metronome's run ids: the UTC time to the second and five random letters or digits."""
    stamp = datetime.fromtimestamp(wall, tz=UTC).strftime("%Y%m%d%H%M%S")
    return stamp + "".join(random.choices(string.ascii_letters + string.digits, k=5))


class MetronomeEmulator(HttpEmulator):
    """Metronome and the Mesos master and agents under it.

    heartbeat_seconds: the interval of the master event stream's HEARTBEATs (the master's
    is 15 s). snapshot_tasks: that many running tasks of another framework (Marathon),
    listed only in the SUBSCRIBED snapshot of the event stream, to make it as big as a
    production cluster's.
    """

    service_prefixes = ("/service/metronome",)

    def __init__(
        self,
        step_seconds: float = 0.05,
        run_seconds: float = 0.2,
        auth: AuthMode = None,
        admin_router: bool = False,
        *,
        heartbeat_seconds: float = 15.0,
        snapshot_tasks: int = 0,
    ) -> None:
        super().__init__(Authenticator(auth, admin_router))
        if heartbeat_seconds <= 0:
            raise ValueError("heartbeat_seconds must be positive")
        self.step_seconds = step_seconds
        self.run_seconds = run_seconds
        self.heartbeat_seconds = heartbeat_seconds
        # False: POST /mesos/api/v1 answers 404, as Admin Router does for what it refuses.
        self.events_enabled = True
        # The two routes to the master that say where a task runs. False: Admin Router's
        # 404 page, as for a path it does not route: an older DC/OS or a proxy without
        # /mesos/tasks (tasks_enabled), or neither (state_enabled as well).
        self.tasks_enabled = True
        self.state_enabled = True
        # Re-entrant: a stream closed by a thread that holds it wakes the subscribers.
        self._lock = threading.RLock()
        # Notified when a timeline changes (a run started or stopped) or a stream ends.
        self._changed = threading.Condition(self._lock)
        self._stopping = False
        self._subscribers: list[threading.Thread] = []
        now = time.monotonic()
        self._clock = Clock(now, time.time())
        # The frameworks and agents registered an hour before the emulator started.
        self._registered = now - 3600
        self._others = [x.v1_json(now, self._clock) for x in marathon_tasks(snapshot_tasks, now)]
        self._jobs: dict[str, Job] = {}
        self._scripts: dict[str, Script] = {}
        self._tasks: list[MesosTask] = []  # Mesos keeps them after Metronome forgets
        self._agents = 0
        # Run on every job body received by POST/PUT (the id filled in from the URL); a
        # ValueError becomes a 422.
        self.validators: list[Validator] = []
        self._add_routes()

    # -- lifecycle -------------------------------------------------------------------

    def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> str:
        self._stopping = False
        return super().start(port, tls)

    def stop(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
            subscribers, self._subscribers = self._subscribers, []
        for thread in subscribers:
            thread.join()
        super().stop()

    # -- test-facing helpers ---------------------------------------------------------

    def script(
        self,
        job_id: str,
        stdout: str = "",
        *,
        stderr: str = "",
        files: dict[str, bytes] | None = None,
        exit_code: int = 0,
        seconds: float | None = None,
    ) -> None:
        """What the runs of `job_id` started from now on do."""
        with self._lock:
            self._scripts[job_id] = Script(stdout, stderr, dict(files or {}), exit_code, seconds)

    def job(self, job_id: str) -> dict[str, Any] | None:
        """The job as GET /v1/jobs/{id}?embed=history answers it, or None."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else self._job_json(job, {"history"}, time.monotonic())

    def runs_finished_at(self) -> list[float]:
        """The time.monotonic() moments at which runs ended, oldest first."""
        with self._lock:
            t = time.monotonic()
            return sorted(r.ended_at for job in self._jobs.values() for r in job.runs if r.ended(t))

    def stopped_runs(self) -> list[str]:
        """Run ids that a client asked to stop."""
        return [
            r.path.split("/")[-3]
            for r in self.mutating_requests()
            if r.method == "POST" and r.path.endswith("/actions/stop")
        ]

    # -- routes ----------------------------------------------------------------------

    def _add(self, method: str, pattern: str, handler: Handler) -> None:
        def locked(request: Request, match: re.Match[str]) -> Response:
            with self._lock:
                return handler(request, match)

        self.router.add(method, pattern, locked)

    def _add_routes(self) -> None:
        self._add("GET", r"/ping", lambda request, match: Response(200, "pong"))
        self._add("GET", r"/v1/jobs", self._list_jobs)
        self._add("POST", r"/v1/jobs", self._create_job)
        self._add("GET", rf"/v1/jobs/{JOB}", self._show_job)
        self._add("PUT", rf"/v1/jobs/{JOB}", self._update_job)
        self._add("DELETE", rf"/v1/jobs/{JOB}", self._delete_job)
        self._add("GET", rf"/v1/jobs/{JOB}/runs", self._list_runs)
        self._add("POST", rf"/v1/jobs/{JOB}/runs", self._start_run)
        self._add("GET", rf"/v1/jobs/{JOB}/runs/{RUN}", self._show_run)
        self._add("POST", rf"/v1/jobs/{JOB}/runs/{RUN}/actions/stop", self._stop_run)
        self._add("GET", r"/mesos(/master)?/state(\.json)?", self._master_state)
        self._add("GET", r"/mesos(/master)?/tasks(\.json)?", self._master_tasks)
        self._add("GET", rf"{AGENT}(/slave\(1\))?/state(\.json)?", self._agent_state)
        self._add("GET", rf"{AGENT}/files/read(\.json)?", self._read_file)
        self._add("GET", rf"{AGENT}/files/download(\.json)?", self._download_file)
        self._add("POST", OPERATOR_API, self._operator_call)
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            self._add(method, OPERATOR_API, self._operator_method)

    # -- jobs ------------------------------------------------------------------------

    def _body(self, request: Request, job_id: str | None) -> dict[str, Any]:
        try:
            body = json.loads(request.raw_body)
        except ValueError as e:
            raise _error(
                400, {"message": "Invalid JSON", "details": [{"path": "/", "errors": [str(e)]}]}
            ) from e
        if isinstance(body, dict) and job_id is not None:
            body["id"] = job_id  # PUT takes the id from the URL
        details = check_job(body)
        if details:
            raise _invalid(details)
        for validator in list(self.validators):
            try:
                validator(copy.deepcopy(body))
            except ValueError as e:
                raise _invalid([{"path": "/", "errors": [str(e)]}]) from e
        return dict(body)

    def _existing(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise _error(404, {"id": job_id, "message": "Job not found"})
        return job

    def _job_json(self, job: Job, embeds: set[str], t: float) -> dict[str, Any]:
        answer = copy.deepcopy(job.definition)
        finished = [r for r in job.runs if r.ended(t)]
        if "activeRuns" in embeds:
            answer["activeRuns"] = [self._run_json(r, t) for r in job.runs if not r.ended(t)]
        if "schedules" in embeds:
            answer["schedules"] = copy.deepcopy(job.schedules)
        if "history" in embeds or "historySummary" in embeds:
            summary = self._history_summary(finished)
            if "history" in embeds:
                newest_first = sorted(finished, key=lambda r: r.ended_at, reverse=True)
                answer["history"] = {
                    **summary,
                    "successfulFinishedRuns": [
                        self._finished_json(r) for r in newest_first if r.succeeded()
                    ],
                    "failedFinishedRuns": [
                        self._finished_json(r) for r in newest_first if not r.succeeded()
                    ],
                }
            if "historySummary" in embeds:
                answer["historySummary"] = summary
        return answer

    def _history_summary(self, finished: list[JobRun]) -> dict[str, Any]:
        def last(runs: list[JobRun]) -> str | None:
            return self._clock.metronome(max(r.ended_at for r in runs)) if runs else None

        good = [r for r in finished if r.succeeded()]
        bad = [r for r in finished if not r.succeeded()]
        return {
            "successCount": len(good),
            "failureCount": len(bad),
            "lastSuccessAt": last(good),
            "lastFailureAt": last(bad),
        }

    def _finished_json(self, run: JobRun) -> dict[str, Any]:
        return {
            "id": run.id,
            "createdAt": self._clock.metronome(run.created_at),
            "finishedAt": self._clock.metronome(run.ended_at),
            "tasks": [run.task.id] if run.task is not None else [],
        }

    def _list_jobs(self, request: Request, match: re.Match[str]) -> Response:
        embeds, t = set(request.query.get("embed", [])), time.monotonic()
        return Response(200, [self._job_json(j, embeds, t) for _, j in sorted(self._jobs.items())])

    def _show_job(self, request: Request, match: re.Match[str]) -> Response:
        job = self._existing(match["job"])
        return Response(
            200, self._job_json(job, set(request.query.get("embed", [])), time.monotonic())
        )

    def _create_job(self, request: Request, match: re.Match[str]) -> Response:
        body = self._body(request, None)
        if body["id"] in self._jobs:
            raise _error(409, {"message": "Job with this id already exists"})
        self._jobs[body["id"]] = Job(normalize(body), copy.deepcopy(body.get("schedules", [])))
        return Response(201, copy.deepcopy(self._jobs[body["id"]].definition))

    def _update_job(self, request: Request, match: re.Match[str]) -> Response:
        job = self._existing(match["job"])
        # The whole definition is replaced; schedules are kept (Metronome ignores them here).
        job.definition = normalize(self._body(request, match["job"]))
        return Response(200, copy.deepcopy(job.definition))

    def _delete_job(self, request: Request, match: re.Match[str]) -> Response:
        job, t = self._existing(match["job"]), time.monotonic()
        active = [r for r in job.runs if not r.ended(t)]
        if active and not request.flag("stopCurrentJobRuns", False):
            raise _error(
                409, {"message": "There are active job runs. Override with stopCurrentJobRuns=true"}
            )
        for run in active:
            self._stop(run, t)
        del self._jobs[job.definition["id"]]
        return Response(200, copy.deepcopy(job.definition))

    # -- runs ------------------------------------------------------------------------

    def _run_json(self, run: JobRun, t: float) -> dict[str, Any]:
        tasks = []
        if run.launched(t):
            assert run.task is not None
            tasks.append(
                {
                    "id": run.task.id,
                    "startedAt": self._clock.metronome(run.task.staged_at),
                    "completedAt": None,
                    "status": run.task.state(t),
                }
            )
        return {
            "id": run.id,
            "jobId": run.job_id,
            "status": run.status(t),
            "createdAt": self._clock.metronome(run.created_at),
            "completedAt": None,
            "tasks": tasks,
        }

    def _active_run(self, match: re.Match[str], t: float) -> JobRun:
        job = self._existing(match["job"])
        for run in job.runs:
            if run.id == match["run"] and not run.ended(t):
                return run
        raise _error(
            404, {"jobSpec": match["job"], "id": match["run"], "message": "Job Run not found"}
        )

    def _list_runs(self, request: Request, match: re.Match[str]) -> Response:
        job, t = self._existing(match["job"]), time.monotonic()
        return Response(200, [self._run_json(r, t) for r in job.runs if not r.ended(t)])

    def _start_run(self, request: Request, match: re.Match[str]) -> Response:
        job, t = self._existing(match["job"]), time.monotonic()
        job_id = job.definition["id"]
        script = copy.deepcopy(self._scripts.get(job_id, Script()))
        spec = job.definition["run"]
        new_id = run_id(self._clock.wall(t))
        staged = t + 2 * self.step_seconds
        running = staged + self.step_seconds
        agent = AGENTS[self._agents % len(AGENTS)]
        self._agents += 1
        task = MesosTask(
            # Marathon's task ids, which Metronome uses: the run's path with '_', a '.', a UUID.
            id=f"{job_id.replace('.', '_')}_{new_id}.{uuid.uuid4()}",
            name=job_id,
            agent=agent,
            cmd=spec.get("cmd") or "",
            resources={k: float(spec[k]) for k in ("cpus", "mem", "disk")},
            script=script,
            staged_at=staged,
            running_at=running,
            done_at=running + (script.seconds if script.seconds is not None else self.run_seconds),
            pid=random.randint(100, 30000),
        )
        run = JobRun(new_id, job_id, t, t + self.step_seconds, task)
        job.runs.append(run)
        self._tasks.append(task)
        self._changed.notify_all()
        return Response(201, self._run_json(run, t))

    def _show_run(self, request: Request, match: re.Match[str]) -> Response:
        t = time.monotonic()
        return Response(200, self._run_json(self._active_run(match, t), t))

    def _stop_run(self, request: Request, match: re.Match[str]) -> Response:
        t = time.monotonic()
        run = self._active_run(match, t)
        self._stop(run, t)
        return Response(200, self._run_json(run, t))

    def _stop(self, run: JobRun, t: float) -> None:
        run.stopped_at = t
        if run.task is None:
            return
        if run.launched(t):
            run.task.stopped_at = t
        else:
            self._tasks.remove(run.task)
            run.task = None
        self._changed.notify_all()

    # -- Mesos -----------------------------------------------------------------------

    def _master_state(self, request: Request, match: re.Match[str]) -> Response:
        if not self.state_enabled:
            raise HttpError(html_page(404, "Not Found"))
        return Response(
            200,
            master_state(self._tasks, time.monotonic(), self._clock, self.url, self._registered),
        )

    def _master_tasks(self, request: Request, match: re.Match[str]) -> Response:
        """GET /mesos/tasks: running and completed tasks, newest first unless order=asc."""
        if not self.tasks_enabled:
            raise HttpError(html_page(404, "Not Found"))
        t = time.monotonic()
        wanted_task, wanted_framework = request.param("task_id"), request.param("framework_id")
        tasks = [
            x.master_json(t, self._clock)
            for x in self._tasks
            if x.staged_at <= t and (wanted_task is None or x.id == wanted_task)
        ]
        tasks = [
            x for x in tasks if wanted_framework is None or x["framework_id"] == wanted_framework
        ]
        tasks.sort(
            key=lambda x: x["statuses"][0]["timestamp"], reverse=request.param("order") != "asc"
        )
        offset, limit = int(request.param("offset") or 0), int(request.param("limit") or 100)
        return Response(200, {"tasks": tasks[offset : offset + limit]})

    def _agent(self, match: re.Match[str]) -> Agent:
        for agent in AGENTS:
            if agent.slave_id == match["agent"]:
                return agent
        # Admin Router knows no such agent.
        raise HttpError(html_page(404, "Not Found"))

    def _agent_state(self, request: Request, match: re.Match[str]) -> Response:
        return Response(
            200, agent_state(self._agent(match), self._tasks, time.monotonic(), self._clock)
        )

    def _sandbox_file(self, request: Request, match: re.Match[str]) -> bytes:
        agent, t = self._agent(match), time.monotonic()
        path = request.param("path")
        if not path:
            raise HttpError(Response(400, "Expecting 'path=value' in query.\n"))
        for task in self._tasks:
            if (
                task.agent == agent
                and path.startswith(task.directory + "/")
                and task.staged_at <= t
            ):
                data = task.files(t, self._clock).get(path.removeprefix(task.directory + "/"))
                if data is not None:
                    return data
        raise HttpError(Response(404))  # Mesos: an empty 404 for a missing file

    def _read_file(self, request: Request, match: re.Match[str]) -> Response:
        data = self._sandbox_file(request, match)
        given_length = request.param("length")
        try:
            offset = int(request.param("offset") or -1)
            # length=-1, like none, reads to the end (up to the cap).
            length = (
                int(given_length) if given_length is not None and given_length != "-1" else None
            )
        except ValueError as e:
            raise HttpError(Response(400, f"Failed to parse offset or length: {e}.\n")) from e
        return Response(200, read_answer(data, offset, length), content_type="application/json")

    def _download_file(self, request: Request, match: re.Match[str]) -> Response:
        return Response(
            200, self._sandbox_file(request, match), content_type="application/octet-stream"
        )

    # -- the master's operator API: the event stream -------------------------------------

    def _operator_method(self, request: Request, match: re.Match[str]) -> Response:
        if not self.events_enabled:
            raise HttpError(html_page(404, "Not Found"))
        return Response(
            405,
            f"405 Method Not Allowed. Expecting one of {{ 'POST' }}, but received "
            f"'{request.method}'.",
            headers={"Allow": "POST"},
        )

    def _operator_call(self, request: Request, match: re.Match[str]) -> Response:
        """POST /api/v1, checked in the order of the master's Http::api; of the calls,
        only SUBSCRIBE is emulated."""
        if not self.events_enabled:
            raise HttpError(html_page(404, "Not Found"))
        call_type = _call_type(request)
        accept = request.headers.get("accept")
        if not accepts(accept, APPLICATION_JSON):
            if accepts(accept, APPLICATION_PROTOBUF):
                raise HttpError(
                    Response(501, "The Mesos emulator answers in JSON only, not in protobuf.\n")
                )
            raise HttpError(
                Response(
                    406,
                    "Expecting 'Accept' to allow 'application/x-protobuf' or 'application/json'",
                )
            )
        if call_type != "SUBSCRIBE":
            raise HttpError(
                Response(
                    501,
                    f"The Mesos emulator does not implement the {call_type} call of the "
                    "operator API, only SUBSCRIBE.\n",
                )
            )
        return self._subscribe()

    def _subscribe(self) -> Response:
        """The event stream: SUBSCRIBED with the state now, then the events from now on.

        Like the master (ReadOnlyHandler::subscribe and its heartbeater), a HEARTBEAT
        follows SUBSCRIBED at once, then one each interval."""
        t = time.monotonic()
        stream = self.open_stream(on_close=self._wake)
        subscription = Subscription(self._tasks, t, self.heartbeat_seconds)
        state = v1_state(self._tasks, self._others, t, self._clock, self._registered)
        stream.send(recordio(subscribed(state, self.heartbeat_seconds)))
        stream.send(recordio(HEARTBEAT))
        thread = threading.Thread(
            target=self._tell, args=(stream, subscription), name="MesosSubscriber", daemon=True
        )
        self._subscribers = [x for x in self._subscribers if x.is_alive()] + [thread]
        thread.start()  # it waits for the lock, held until this answer is on its way
        return Response(200, content_type=APPLICATION_JSON, stream=stream)

    def _tell(self, stream: Stream, subscription: Subscription) -> None:
        """Send each event when it falls due, until the stream or the emulator ends.

        When the client goes away the server closes the stream (at once over HTTP, at
        the next write over HTTPS), which wakes this thread to end."""
        with self._changed:
            while not (self._stopping or stream.closed):
                events, upcoming = subscription.due(self._tasks, time.monotonic(), self._clock)
                for event in events:
                    stream.send(recordio(event))
                self._changed.wait(max(0.0, upcoming - time.monotonic()))

    def _wake(self) -> None:
        with self._changed:
            self._changed.notify_all()


def _call_type(request: Request) -> str:
    """The type of the call in a request's body, or the master's answer when there is
    none (a 400, or a 415 for a body neither JSON nor protobuf)."""
    content_type = request.headers.get("content-type")
    if content_type is None:
        raise HttpError(Response(400, "Expecting 'Content-Type' to be present"))
    # The master compares the whole header: "application/json; charset=utf-8" is a 415.
    if content_type == APPLICATION_PROTOBUF:
        raise HttpError(
            Response(501, "The Mesos emulator does not implement protobuf calls, only JSON.\n")
        )
    if content_type != APPLICATION_JSON:
        raise HttpError(
            Response(
                415,
                f"Expecting 'Content-Type' of {APPLICATION_JSON} or {APPLICATION_PROTOBUF}",
            )
        )
    try:
        body = json.loads(request.raw_body)
    except ValueError as e:
        raise HttpError(Response(400, f"Failed to parse body into JSON: {e}")) from e
    if not isinstance(body, dict):
        raise HttpError(
            Response(400, "Failed to convert JSON into Call protobuf: Expecting a JSON object")
        )
    call_type = body.get("type")
    # An unknown name of an optional enum is dropped when parsing, as if absent.
    if not isinstance(call_type, str) or call_type not in CALL_TYPES:
        raise HttpError(
            Response(400, "Failed to validate master::Call: Expecting 'type' to be present")
        )
    return call_type
