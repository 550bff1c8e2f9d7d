"""run-job: run a one-off job to completion, stream its log, stop it at the timeout, and
collect the outputs it wrote for later steps."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from treadle import __version__, tracing
from treadle.bodies import hidden, secret_values
from treadle.errors import Cancelled, InputError, StageFailed, Timeout, TreadleError
from treadle.limits import MAX_CPUS
from treadle.providers.base import (
    JOB_EVENTS,
    JOBS,
    LABEL_VERSION,
    JobProvider,
    JobRequest,
    JobRun,
    JobStatus,
    LogStream,
)
from treadle.stages import job_outputs
from treadle.stages.runtime import Runtime
from treadle.waiting import SAFETY_NET_POLL, Wakeup, pause, poll_intervals, shielded

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
LOG_TAIL_LINES = 20
STREAMS: tuple[LogStream, ...] = ("stdout", "stderr")
# How often a job's log is read while news of its run comes as it happens.
LOG_FIRST, LOG_MAX = 1.0, 5.0


@dataclass(frozen=True)
class Request:
    job_id: str | None = None
    image: str | None = None
    command: str | None = None
    env: tuple[str, ...] = ()
    cpus: float | None = None
    mem: int | None = None
    spec: Mapping[str, Any] | None = None
    output_file: str | None = None

    def job(self, provenance: Mapping[str, str] | None = None) -> JobRequest:
        """The provider's request; `provenance` (the CI run's labels) labels the job too."""
        env: dict[str, str] = {}
        for item in self.env:
            key, sep, value = item.partition("=")
            if not sep or not _ENV_KEY.fullmatch(key):
                # Not quoted whole: its value may be a secret.
                name = _ENV_KEY.match(item)
                shown = f" {name[0]}..." if name else ""
                raise InputError(f"invalid --env{shown}: expected KEY=VALUE")
            env[key] = value
        if self.cpus is not None and not 0 < self.cpus <= MAX_CPUS:
            raise InputError(f"--cpus must be more than 0 and at most a million, not {self.cpus:g}")
        if self.mem is not None and self.mem <= 0:
            raise InputError(f"--mem must be more than 0, not {self.mem}")
        if not (self.spec or self.image or self.job_id):
            raise InputError(
                "name the job: --spec, or --image (with --cmd), or --job-id of an existing job"
            )
        if self.output_file is not None and not self.output_file.strip():
            raise InputError("--output-file is empty")
        return JobRequest(
            job_id=self.job_id,
            image=self.image,
            command=self.command,
            env=env,
            cpus=self.cpus,
            mem=self.mem,
            spec=self.spec,
            labels={**(provenance or {}), LABEL_VERSION: __version__},
            output_file=self.output_file,
        )


def jobs_of(rt: Runtime) -> JobProvider:
    if JOBS not in rt.provider.capabilities:
        raise InputError(f"the {rt.provider.name} provider cannot run jobs")
    return cast(JobProvider, rt.provider)


def run_job(rt: Runtime, request: Request) -> dict[str, object]:
    provider = jobs_of(rt)
    definition = provider.job_definition(request.job(rt.provenance))
    for value in secret_values(definition):
        rt.console.mask(value)
    if rt.dry_run:
        rt.console.raw(json.dumps(hidden(definition), indent=2) + "\n")
        rt.plan("start a run of the job above")
        return {}
    run = provider.start_job(definition)
    fields: dict[str, object] = {"job_id": run.job_id, "run_id": run.run_id}
    rt.console.info(f"started run {run.run_id} of job {run.job_id}")
    if not rt.wait:
        return fields
    log = LogFollower(rt, provider, run)
    try:
        with (
            rt.console.section(f"run {run.run_id} of job {run.job_id}: its log"),
            tracing.span(
                "wait job run", {"treadle.wait.for": f"run {run.run_id} of job {run.job_id}"}
            ) as span,
        ):
            status = follow(rt, provider, run, log, span)
        fields.update(job_status=status.state, exit_code=status.exit_code)
        outputs = job_outputs.from_log(log.text)
        if request.output_file and status.succeeded:
            data = provider.job_file(run, request.output_file)
            if data is None:
                raise StageFailed(
                    f"the job succeeded but wrote no output file {request.output_file}"
                )
            outputs.update(job_outputs.from_file(data, request.output_file))
        fields["outputs"] = outputs
        if not status.succeeded:
            reason = status.message or f"it ended {status.state}"
            code = f" with exit code {status.exit_code}" if status.exit_code is not None else ""
            raise StageFailed(
                f"job {run.job_id} run {run.run_id} failed{code}: {reason}{log.tail()}"
            )
    except TreadleError as e:
        e.fields = {**fields, **e.fields}
        raise
    finally:
        provider.finish_job(run)
    return fields


def follow(
    rt: Runtime,
    provider: JobProvider,
    run: JobRun,
    log: LogFollower,
    span: tracing.Span = tracing.NOOP,
) -> JobStatus:
    """Stream the log until the run ends; stop it at the deadline.

    Without news of the run, its state and log are polled together, from 0.1 s backing
    off to 2 s. With news (the provider's event stream, once live), the state is read
    when news comes (the run's task was launched, or ended) and at the news' safety net
    (every 10 s on Mesos, 2 s on Docker) in case some got lost, and the log at its own pace, from LOG_FIRST backing off to
    LOG_MAX: a job's output reaches the CI log a little later, for far fewer requests.
    """
    last_state, looks = "", 0
    polls, log_pace = poll_intervals(), poll_intervals(LOG_FIRST, LOG_MAX)
    with watching_job(rt, provider, run) as news:
        looked = next_log = time.monotonic()
        while True:
            live = news is not None and news.live
            wait = max(0.0, next_log - time.monotonic()) if live else next(polls)
            try:
                woken = pause(min(wait, max(0.05, rt.deadline.remaining())), news)
            except Cancelled:
                rt.console.info(f"run {run.run_id}: cancelled, stopping it")
                with shielded():
                    provider.stop_job(run)
                raise
            now, live = time.monotonic(), news is not None and news.live
            safety_net = news.safety_net if news is not None else SAFETY_NET_POLL
            if woken or not live or rt.deadline.expired() or now - looked >= safety_net:
                looked, looks = now, looks + 1
                status = provider.job_status(run)
                if status.finished:
                    log.read(final=True)
                if status.state != last_state:
                    rt.console.info(f"run {run.run_id}: {status.state}")
                    last_state = status.state
                if status.finished:
                    span.set(
                        {
                            "treadle.wait.looks": looks,
                            "treadle.wait.woke_by": "event" if woken else "poll",
                            "treadle.wait.events_live": live,
                            "treadle.wait.state": status.state,
                        }
                    )
                    return status
                if rt.deadline.expired():
                    stop_at_deadline(rt, provider, run, log, status)
            if not live or now >= next_log:
                log.read()
                next_log = now + next(log_pace)


def watching_job(
    rt: Runtime, provider: JobProvider, run: JobRun
) -> contextlib.AbstractContextManager[Wakeup | None]:
    """The provider's news of `run` while run-job follows it, where it has any."""
    if rt.events and JOB_EVENTS in rt.provider.capabilities:
        return provider.watch_job(run)
    return contextlib.nullcontext()


def stop_at_deadline(
    rt: Runtime, provider: JobProvider, run: JobRun, log: LogFollower, status: JobStatus
) -> NoReturn:
    rt.console.info(f"run {run.run_id}: still {status.state} at the timeout, stopping it")
    provider.stop_job(run)
    log.read(final=True)
    raise Timeout(
        f"job {run.job_id} run {run.run_id} did not finish in {rt.deadline.seconds:g}s and "
        f"was stopped{log.tail()}",
        fields={"job_status": status.state},
    )


class LogFollower:
    """Reads the job's stdout and stderr as they grow and echoes each new line to stderr,
    the streams told apart (`| ` and `! `); outputs are read from stdout alone. Each look
    shows what is new in stdout, then what is new in stderr: the engines and Mesos keep
    them apart, so lines of the two are not interleaved to the moment."""

    def __init__(self, rt: Runtime, provider: JobProvider, run: JobRun) -> None:
        self.rt, self.provider, self.run = rt, provider, run
        self.streams = {name: _Stream() for name in STREAMS}

    @property
    def text(self) -> str:
        """The whole stdout so far."""
        return self.streams["stdout"].text

    def read(self, final: bool = False) -> None:
        for name, stream in self.streams.items():
            chunk, stream.offset = self.provider.job_log(self.run, stream.offset, name)
            stream.text += chunk
            lines = (stream.partial + chunk).split("\n")
            stream.partial = "" if final else lines.pop()
            # The job's own words: they must not drive the CI system's log (treadle.ci).
            self.rt.console.untrusted([line for line in lines if line or not final], stream=name)

    def tail(self) -> str:
        """The last lines of each stream that has any, for a failure's message."""
        parts = []
        for name, stream in self.streams.items():
            lines = stream.text.rstrip("\n").splitlines()[-LOG_TAIL_LINES:]
            if lines:
                parts.append(f"\nlast lines of its {name}:\n" + "\n".join(lines))
        return "".join(parts)


@dataclass
class _Stream:
    text: str = ""
    offset: int = 0
    # A line not ended yet, printed once it is (or at the end).
    partial: str = ""
