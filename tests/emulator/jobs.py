"""Metronome job definitions: the emulator's own minimal check of a body (tests append the
real schema as a validator when the shared data is there), and the job as Metronome
answers it, with its defaults filled in."""

from __future__ import annotations

import copy
import re
from typing import Any

from .apps import Detail, detail

JOB_ID = re.compile(
    r"^([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])(\.([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9]))*$"
)
JOB_FIELDS = {"id", "description", "dependencies", "labels", "schedules", "run"}
RUN_FIELDS = set(
    "args artifacts cmd cpus disk docker env gpus maxLaunchDelay mem networks placement "
    "restart secrets taskKillGracePeriodSeconds ucr user volumes".split()
)
# The schema's minimums of the resources it requires.
RESOURCES = {"cpus": 0.01, "mem": 32, "disk": 0}
NOTHING_TO_RUN = "Cmd, Docker or UCR image must be specified"


def check_job(body: Any) -> list[Detail]:
    """What Metronome would refuse in a job body (422), as error details."""
    if not isinstance(body, dict):
        return [detail("/", "expected an object")]
    errors = [
        detail(f"/{k}", "additional property not allowed") for k in sorted(set(body) - JOB_FIELDS)
    ]
    job_id = body.get("id")
    if not isinstance(job_id, str) or not JOB_ID.match(job_id):
        errors.append(detail("/id", f"must fully match regular expression '{JOB_ID.pattern}'"))
    labels = body.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        errors.append(detail("/labels", "must be an object of strings"))
    run = body.get("run")
    if not isinstance(run, dict):
        return [*errors, detail("/run", "required object")]
    errors += [
        detail(f"/run/{k}", "additional property not allowed")
        for k in sorted(set(run) - RUN_FIELDS)
    ]
    for field, minimum in RESOURCES.items():
        value = run.get(field)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            errors.append(detail(f"/run/{field}", f"required number of at least {minimum}"))
    env = run.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, (str, dict)) for v in env.values()):
        errors.append(detail("/run/env", "must map names to strings or secrets"))
    docker = run.get("docker")
    if not (run.get("cmd") or (isinstance(docker, dict) and docker.get("image")) or run.get("ucr")):
        errors.append(detail("/run", NOTHING_TO_RUN))
    if docker and run.get("ucr"):
        errors.append(detail("/run", "Either Docker or UCR should be provided, but not both"))
    return errors


def normalize(body: dict[str, Any]) -> dict[str, Any]:
    """The job as GET /v1/jobs/{id} answers it: Metronome's defaults filled in."""
    run = copy.deepcopy(body["run"])
    docker = run.get("docker")
    if docker:
        run["docker"] = {"privileged": False, "parameters": [], "forcePullImage": False, **docker}
    defaults: dict[str, Any] = {
        "gpus": 0,
        "env": {},
        "placement": {"constraints": []},
        "artifacts": [],
        "maxLaunchDelay": 3600,
        "volumes": [],
        "restart": {"policy": "NEVER"},
        "secrets": {},
        "networks": [],
    }
    job: dict[str, Any] = {"id": body["id"]}
    if "description" in body:
        job["description"] = body["description"]
    job.update(
        dependencies=copy.deepcopy(body.get("dependencies", [])),
        labels=dict(body.get("labels", {})),
        run={**defaults, **run},
    )
    return job
