"""DC/OS Metronome jobs for run-job: the job definition treadle sends (built without any
call), and a run followed from start to finish.

Metronome forgets a run once it ends: `GET /v1/jobs/{id}/runs/{run}` then answers 404 and
the outcome is only in the job's history (`?embed=history`), under
`successfulFinishedRuns` or `failedFinishedRuns`. The run's log and files are in its Mesos
task's sandbox (treadle.providers.marathon.sandbox), and so is its exit code: Metronome
and Mesos only say FAILED.

Outputs never vanish. While the run is young its task may not have reached an agent, so
a sandbox that cannot be read is tried again quietly. Once the run has ended:
- succeeded, and its stdout cannot be read: the stage fails (exit 1) naming what it
  could not read and why. Its TREADLE_OUTPUT lines are out of reach, and `outputs: {}`
  would only move the failure to a later step ("matched nothing"), far from its cause;
- an `--output-file` that cannot be read fails the same way;
- failed, and its exit code cannot be read: it fails as any failed run, saying why the
  exit code is missing (its log, which cannot be read either, is only warned about).

Without a route to the sandbox at all (a `--metronome-url` not under Admin Router and no
`--dcos-url`), run-job still runs jobs whose outputs nobody asked for: a migration or a
smoke test needs only to succeed, and Metronome says whether it did. It refuses up front
(exit 2, nothing run) what would need the sandbox: an `--output-file`, or a command that
prints TREADLE_OUTPUT lines. Any other job runs with a warning before it starts that its
log and any TREADLE_OUTPUT lines it prints stay out of reach, naming the flag that brings
them; a failed run says why its exit code is unknown.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote

from treadle.console import Console
from treadle.errors import Conflict, InputError, StageFailed
from treadle.providers.base import JobRequest, JobRun, JobStatus, LogStream
from treadle.providers.marathon.http import DcosClient
from treadle.providers.marathon.mesos_events import TaskEvents
from treadle.providers.marathon.sandbox import Sandbox, SandboxUnavailable
from treadle.waiting import Wakeup

_JOB_ID = re.compile(
    r"([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])(\.([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9]))*"
)

# The fields of a job and of its `run` that Metronome's job schema (jobspec.schema.json)
# accepts; it refuses anything else, so treadle refuses it first.
JOB_FIELDS = frozenset({"id", "description", "dependencies", "labels", "run"})
RUN_FIELDS = frozenset(
    "args artifacts cmd cpus disk docker env gpus maxLaunchDelay mem networks placement "
    "restart secrets taskKillGracePeriodSeconds ucr user volumes".split()
)
# A schedule would make Metronome start the job again on its own; run-job runs it once.
# (Metronome's PUT ignores schedules anyway, so sending them would only act on creation.)
SCHEDULES = "schedules"
# Metronome's own default is a whole CPU; a CI step rarely needs it.
DEFAULT_CPUS = 0.1
DEFAULT_MEM = 128
DEFAULT_DISK = 0
MINIMUMS = {"cpus": 0.01, "mem": 32, "disk": 0}
# Where a Docker or UCR container sees its sandbox.
CONTAINER_SANDBOX = "/mnt/mesos/sandbox/"

SUCCESS, FAILED = "SUCCESS", "FAILED"
NO_METRONOME = "run-job on DC/OS needs Metronome: give --metronome-url or --dcos-url"
NO_SANDBOX = (
    "give --dcos-url (or a --metronome-url ending in /service/metronome) so treadle can read "
    "the job's Mesos sandbox"
)
# The stage's marker of an output line in a job's stdout (treadle.stages.job_outputs).
OUTPUT_MARKER = "TREADLE_OUTPUT"


def check_job_id(job_id: object) -> str:
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise InputError(
            f"invalid job id {job_id!r}: Metronome job ids are names separated by dots, each of "
            "lower-case letters, digits and '-', not starting or ending with '-' (e.g. ci.db-migrate)"
        )
    return job_id


def build_job(job: JobRequest) -> dict[str, Any]:
    """The job definition: the flags laid over the spec. A bare `--job-id` gives `{"id": ...}`:
    run the existing job as it is."""
    spec = copy.deepcopy(dict(job.spec or {}))
    spec.pop(SCHEDULES, None)
    _refuse_unknown(spec, JOB_FIELDS, "the spec")
    job_id = job.job_id or spec.get("id")
    if not job_id:
        raise InputError(
            'name the job: --job-id, or "id" in the spec (Metronome ids are dotted, e.g. ci.db-migrate)'
        )
    check_job_id(job_id)
    flags = (job.image, job.command, job.env, job.cpus, job.mem)
    if not spec and not any(flags):
        return {"id": job_id}
    run = spec.get("run") or {}
    if not isinstance(run, dict):
        raise InputError("the spec's run must be an object")
    _refuse_unknown(run, RUN_FIELDS, "the spec's run")
    if job.command:
        run.pop("args", None)
        run["cmd"] = job.command
    if job.image:
        _set_image(run, job.image)
    if job.env:
        run["env"] = {**_mapping(run.get("env"), "run.env"), **job.env}
    for field, flag, default in (
        ("cpus", job.cpus, DEFAULT_CPUS),
        ("mem", job.mem, DEFAULT_MEM),
        ("disk", None, DEFAULT_DISK),
    ):
        run[field] = _resource(field, flag if flag is not None else run.get(field, default))
    if not (run.get("cmd") or (run.get("docker") or {}).get("image") or run.get("ucr")):
        raise InputError("the job has nothing to run: give --cmd, --image, or run.cmd in the spec")
    if run.get("docker") and run.get("ucr"):
        raise InputError("the spec's run has both docker and ucr: Metronome takes one of them")
    labels = {**_mapping(spec.get("labels"), "labels"), **job.labels}
    if not all(isinstance(v, str) for v in labels.values()):
        raise InputError("the spec's labels must all be strings")
    return {**spec, "id": job_id, "labels": labels, "run": run}


def _refuse_unknown(fields: Mapping[str, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(fields) - known)
    if unknown:
        raise InputError(
            f"{where} has fields Metronome does not accept: {', '.join(map(repr, unknown))} "
            f"(it takes {', '.join(sorted(known))})"
        )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"the spec's {where} must be an object")
    return value


def _set_image(run: dict[str, Any], image: str) -> None:
    """Into the container the spec chose (UCR), else Docker's."""
    if run.get("ucr"):
        run["ucr"] = {**run["ucr"], "image": {**(run["ucr"].get("image") or {}), "id": image}}
    else:
        run["docker"] = {**_mapping(run.get("docker"), "run.docker"), "image": image}


def _resource(field: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < MINIMUMS[field]:
        raise InputError(
            f"{field} must be a number of at least {MINIMUMS[field]:g} for Metronome, not {value!r}"
        )
    return value


def sandbox_path(path: str) -> str:
    """An output file's path inside the sandbox: relative, or under the container's view."""
    relative = path.removeprefix(CONTAINER_SANDBOX)
    if relative.startswith("/") or not relative.strip():
        raise InputError(
            f"--output-file {path}: name a file in the job's sandbox, its working directory "
            f"(e.g. result.json or {CONTAINER_SANDBOX}result.json)"
        )
    return relative


@dataclass
class _Followed:
    """What treadle learnt of a run while following it: Metronome forgets it at the end."""

    task_id: str | None = None
    state: str = "INITIAL"
    # The task whose stdout (stderr) the log offsets count in.
    log_tasks: dict[str, str | None] = dataclasses.field(default_factory=dict)


class MetronomeJobs:
    """Runs one-off jobs on Metronome; the log and outputs come from the Mesos sandbox."""

    def __init__(
        self, client: DcosClient | None, sandbox: Sandbox | None, console: Console
    ) -> None:
        self._client = client
        self.sandbox = sandbox
        self.console = console
        self._runs: dict[str, _Followed] = {}
        self._warned_about_log = False
        # The Mesos master's events, reached like the sandbox, through DC/OS.
        self._tasks = TaskEvents(sandbox.client, console) if sandbox is not None else None

    def watch(self, run: JobRun) -> contextlib.AbstractContextManager[Wakeup | None]:
        """News of the run's tasks while inside, where the Mesos master can be asked."""
        if self._tasks is None:
            return contextlib.nullcontext()
        return self._tasks.watching(run.run_id)

    def close(self) -> None:
        if self._tasks is not None:
            self._tasks.close()

    @property
    def client(self) -> DcosClient:
        if self._client is None:
            raise InputError(NO_METRONOME)
        return self._client

    def definition(self, job: JobRequest) -> dict[str, Any]:
        if self._client is None:
            raise InputError(NO_METRONOME)
        if job.output_file is not None:
            sandbox_path(job.output_file)
            if self.sandbox is None:
                raise InputError(
                    f"--output-file {job.output_file} is read from the job's Mesos sandbox: "
                    + NO_SANDBOX
                )
        if job.spec and SCHEDULES in job.spec:
            self.console.warn("the spec's schedules are not sent: run-job starts one run now")
        definition = build_job(job)
        if self.sandbox is None:
            run = definition.get("run") or {}
            command = " ".join(map(str, [run.get("cmd") or "", *(run.get("args") or [])]))
            if OUTPUT_MARKER in command:
                raise InputError(
                    f"the job's command prints {OUTPUT_MARKER} lines, which are read from its "
                    f"stdout in its Mesos sandbox: {NO_SANDBOX}"
                )
            self._warn_about_log(
                f"the job's log will not be streamed, nor any {OUTPUT_MARKER} lines it prints "
                f"collected: {NO_SANDBOX}"
            )
        return definition

    def _job_path(self, job_id: str) -> str:
        return "/v1/jobs/" + quote(job_id, safe="")

    def start(self, definition: dict[str, Any]) -> JobRun:
        job_id = definition["id"]
        if set(definition) != {"id"}:
            self._save(definition)
        run = self.client.request("POST", self._job_path(job_id) + "/runs", missing_ok=True)
        if run is None:
            raise InputError(
                f"job {job_id} does not exist on Metronome: give --spec, or --image or --cmd, to create it"
            )
        self._runs[run["id"]] = _Followed(state=run.get("status") or "INITIAL")
        return JobRun(job_id, run["id"])

    def _save(self, definition: dict[str, Any]) -> None:
        try:
            self.client.request("POST", "/v1/jobs", json=definition)
            self.console.info(f"created job {definition['id']}")
        except Conflict:
            # Metronome's PUT replaces the whole definition (keeping its schedules).
            self.client.request("PUT", self._job_path(definition["id"]), json=definition)
            self.console.info(f"updated job {definition['id']}")

    def status(self, run: JobRun) -> JobStatus:
        followed = self._runs.setdefault(run.run_id, _Followed())
        path = f"{self._job_path(run.job_id)}/runs/{quote(run.run_id, safe='')}"
        answer = self.client.get(path, missing_ok=True)
        if answer is not None:
            followed.state = answer.get("status") or followed.state
            followed.task_id = latest_task(answer.get("tasks") or []) or followed.task_id
            if followed.state not in (SUCCESS, FAILED):
                return JobStatus(followed.state, finished=False)
            return self._outcome(followed, followed.state == SUCCESS)
        job = self.client.get(
            self._job_path(run.job_id), params={"embed": "history"}, missing_ok=True
        )
        if job is None:
            raise StageFailed(f"job {run.job_id} was deleted while its run {run.run_id} ran")
        finished = finished_run(job, run.run_id)
        if finished is None:
            # Gone from the active runs, not yet in the history: Metronome is between the two.
            return JobStatus(followed.state, finished=False)
        succeeded, tasks = finished
        if followed.task_id not in tasks and tasks:
            followed.task_id = tasks[-1]
        return self._outcome(followed, succeeded)

    def _outcome(self, followed: _Followed, succeeded: bool) -> JobStatus:
        followed.state = SUCCESS if succeeded else FAILED
        if succeeded:
            # Metronome counts a run as successful when its task finished: exit status 0.
            return JobStatus(SUCCESS, finished=True, succeeded=True, exit_code=0)
        if followed.task_id is None:  # stopped before a task was launched: no exit code
            return JobStatus(FAILED, finished=True)
        if self.sandbox is None:
            return JobStatus(
                FAILED, finished=True, message=f"its exit code is unknown: {NO_SANDBOX}"
            )
        try:
            ending = self.sandbox.ending(followed.task_id)
        except SandboxUnavailable as e:
            return JobStatus(
                FAILED,
                finished=True,
                message=f"Metronome says {FAILED}; its exit code could not be read: {e}",
            )
        return JobStatus(
            FAILED, finished=True, exit_code=ending.exit_code, message=ending.describe()
        )

    def stop(self, run: JobRun) -> None:
        path = f"{self._job_path(run.job_id)}/runs/{quote(run.run_id, safe='')}/actions/stop"
        # A run that ended meanwhile has nothing left to stop.
        self.client.request("POST", path, missing_ok=True)

    def log(self, run: JobRun, offset: int, stream: LogStream = "stdout") -> tuple[str, int]:
        """The run's stdout or stderr from its sandbox. Only stdout must be read: a
        stderr that cannot be is warned about, once."""
        followed = self._runs.get(run.run_id)
        if self.sandbox is None or followed is None:
            return "", offset  # warned about before the job ran
        if followed.task_id is None:
            if followed.state == SUCCESS and stream == "stdout":
                self._unreadable_log(run, "Metronome names no Mesos task of the run")
            return "", offset
        if followed.log_tasks.get(stream) != followed.task_id:
            # A relaunched task writes a stdout (stderr) of its own.
            followed.log_tasks[stream], offset = followed.task_id, 0
        try:
            return self.sandbox.read(followed.task_id, stream, offset)
        except SandboxUnavailable as e:
            # While the run is young its task may not have reached an agent yet; a failed
            # run fails anyway, saying why its exit code is missing.
            if followed.state == SUCCESS and stream == "stdout":
                self._unreadable_log(run, str(e))
            if followed.state in (SUCCESS, FAILED):
                self._warn_about_log(f"cannot read the job's {stream}: {e}")
            return "", offset

    def _unreadable_log(self, run: JobRun, why: str) -> NoReturn:
        raise StageFailed(
            f"run {run.run_id} of job {run.job_id} succeeded, but its log (stdout in its Mesos "
            f"sandbox) cannot be read, so neither can the {OUTPUT_MARKER} lines it may have "
            f"printed: {why}",
            fields={"job_status": SUCCESS, "exit_code": 0},
        )

    def _warn_about_log(self, message: str) -> None:
        if not self._warned_about_log:
            self._warned_about_log = True
            self.console.warn(message)

    def file(self, run: JobRun, path: str) -> bytes | None:
        followed = self._runs.get(run.run_id)
        if self.sandbox is None:  # definition() refuses an --output-file first
            raise InputError(f"cannot read the output file {path}: {NO_SANDBOX}")
        if followed is None or followed.task_id is None:
            raise StageFailed(
                f"cannot read the output file {path}: Metronome names no Mesos task of run "
                f"{run.run_id} of job {run.job_id}"
            )
        try:
            return self.sandbox.download(followed.task_id, sandbox_path(path))
        except SandboxUnavailable as e:
            raise StageFailed(
                f"cannot read the output file {path} from the job's sandbox: {e}"
            ) from None


def latest_task(tasks: list[dict[str, Any]]) -> str | None:
    """The task a run launched last (Metronome relaunches a failed task under ON_FAILURE)."""
    started = sorted(tasks, key=lambda t: str(t.get("startedAt") or ""))
    return str(started[-1]["id"]) if started else None


def finished_run(job: Mapping[str, Any], run_id: str) -> tuple[bool, list[str]] | None:
    """(succeeded, its task ids) from a job's embedded history; None when not listed."""
    history = job.get("history") or {}
    for key, succeeded in (("successfulFinishedRuns", True), ("failedFinishedRuns", False)):
        for entry in history.get(key) or []:
            if entry.get("id") == run_id:
                return succeeded, [str(t) for t in entry.get("tasks") or []]
    return None
