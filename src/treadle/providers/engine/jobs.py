"""What the Docker and Swarm providers share for run-job: the job a request describes
(checked without any call), the names and labels of its run, and reading a finished run's
log and files from its container.

A run is one container (Docker) or one `replicated-job` service (Swarm) named
`<job id>-<run id>`: the run id is a fresh random suffix, so runs of one job never share
a name and a CI retry starts a new run instead of colliding with the last one. The job id
(by default the image's name: `db-migrate` for `ghcr.io/acme/db-migrate:7`) and the run
id are labels too, so `docker ps -a --filter label=treadle.job=ID` finds every run of a
job.
"""

from __future__ import annotations

import codecs
import io
import posixpath
import re
import secrets
import tarfile
from dataclasses import dataclass, replace
from typing import Any

import docker
import docker.errors

from treadle.errors import InputError, StageFailed
from treadle.images import ImageRef
from treadle.naming import MAX_NAME
from treadle.providers.base import JobRequest
from treadle.providers.engine import spec

LABEL_JOB = "treadle.job"
LABEL_JOB_RUN = "treadle.job-run"
# The job id when neither --job-id nor the image's name gives one.
FALLBACK_JOB_ID = "job"
RUN_ID_BYTES = 4
# What --cmd runs in, replacing the image's entrypoint as Metronome's `cmd` does.
SHELL = ["sh", "-c"]
# Between SIGTERM and SIGKILL when a run is stopped at the timeout, unless the spec's
# stop_grace_period says otherwise: a job that ignores SIGTERM must not hold the stage.
STOP_GRACE = 3 * 10**9
# A job publishes nothing and is done when it exits: these server-group fields make no
# sense for it.
NOT_FOR_JOBS = {
    "ports": "a job serves nothing: it runs to completion",
    "healthcheck": "a job is followed until it exits, not health-checked",
    "restart": "a job runs once: it is never restarted",
    "deploy.restart_policy": "a job runs once: it is never restarted",
    "deploy.replicas": "a job runs one task",
}
# Metronome's job id syntax, so that one pipeline's --job-id works on every provider:
# dot-separated names of lower-case letters, digits and inner hyphens.
_PART = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_JOB_ID = re.compile(rf"{_PART}(\.{_PART})*")
# So that `<job id>-<run id>` fits in a Swarm service name.
MAX_JOB_ID = MAX_NAME - 1 - 2 * RUN_ID_BYTES


@dataclass(frozen=True)
class Job:
    """One run of a job, checked: what a container or a replicated-job service runs."""

    job_id: str
    run_id: str
    workload: spec.Workload
    labels: dict[str, str]

    @property
    def name(self) -> str:
        return resource_name(self.job_id, self.run_id)


def check_job_id(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id) or len(job_id) > MAX_JOB_ID:
        raise InputError(
            f"invalid job id {job_id!r}: at most {MAX_JOB_ID} lower-case letters, digits, "
            "'-' and '.', each dot-separated part starting and ending with a letter or digit "
            "(e.g. db-migrate or ci.db-migrate)"
        )
    return job_id


def default_job_id(image: str) -> str:
    """The last part of the image's repository, made a job id."""
    name = ImageRef.parse(image).repository.rsplit("/", 1)[-1]
    # Repository names may hold `_`; a job id may not.
    candidate = name.replace("_", "-")[:MAX_JOB_ID].strip("-.")
    return candidate if _JOB_ID.fullmatch(candidate) else FALLBACK_JOB_ID


def resource_name(job_id: str, run_id: str) -> str:
    """The container or service name of a run. Swarm takes no dots in a service name."""
    return f"{job_id.replace('.', '-')}-{run_id}"


def run_filter(run_id: str) -> dict[str, list[str]]:
    """An engine list filter: the containers (or services) of one run."""
    return {"label": [f"{LABEL_JOB_RUN}={run_id}"]}


def plan(request: JobRequest, provider: str = spec.DOCKER) -> Job:
    """The run a request asks for: the spec (a server-group spec without ports and health
    check, whose `image` is used when --image is absent), with the flags laid over it."""
    fields = dict(request.spec or {})
    deploy = fields.get("deploy") if isinstance(fields.get("deploy"), dict) else {}
    given = [*fields, *(f"deploy.{k}" for k in deploy or {})]
    for field, why in NOT_FOR_JOBS.items():
        if field in given:
            raise InputError(f"spec: {field} is not for a job: {why}")
    workload = spec.parse(fields, request.image or fields.get("image") or "", provider)
    if not workload.image:
        raise InputError(
            "the job has no image: give --image, or image in the --spec (a job is not kept "
            "between runs, so --job-id alone does not name one)"
        )
    job_id = check_job_id(request.job_id or default_job_id(workload.image))
    run_id = secrets.token_hex(RUN_ID_BYTES)
    environment = {k: v for k, _, v in (item.partition("=") for item in workload.environment)}
    environment.update(request.env)
    changes: dict[str, Any] = {
        "environment": tuple(f"{k}={v}" for k, v in environment.items()),
        "stop_grace": STOP_GRACE if workload.stop_grace is None else workload.stop_grace,
    }
    if request.command is not None:
        changes.update(entrypoint=SHELL, command=[request.command])
    if request.cpus is not None:
        changes["nano_cpus"] = int(request.cpus * 10**9)
    if request.mem is not None:
        changes["memory"] = request.mem * 2**20
    labels = {
        **workload.labels,
        **request.labels,
        LABEL_JOB: job_id,
        LABEL_JOB_RUN: run_id,
    }
    return Job(job_id, run_id, replace(workload, **changes), labels)


def decoded_from(data: bytes, offset: int) -> tuple[str, int]:
    """The text of a log from byte `offset` on, and the offset after it. The engines have
    no byte offsets: the whole log is read and the part already seen is skipped. A
    character cut at the end waits for the next read."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data[offset:])
    pending, _ = decoder.getstate()
    return text, max(offset, len(data) - len(pending))


def read_file(api: docker.APIClient, container_id: str, path: str) -> bytes | None:
    """A file from a container, running or not (a relative path is in its working
    directory; a symbolic link is followed); None when there is no such file."""
    config = api.inspect_container(container_id)["Config"]
    where = posixpath.join(config.get("WorkingDir") or "/", path)
    try:
        archive, stat = api.get_archive(container_id, where)
        if stat.get("linkTarget"):
            archive, _ = api.get_archive(container_id, stat["linkTarget"])
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(archive))) as tar:
        member = tar.next()
        found = tar.extractfile(member) if member is not None and member.isfile() else None
        if found is None:
            raise StageFailed(f"the output file {path} ({where}) is not a regular file")
        return found.read()
