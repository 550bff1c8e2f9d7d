"""A Docker or Swarm job run, checked without an engine: the job ids it takes, how the
flags are laid over the spec, the Engine API bodies both providers make of it, and how
a log is read on from an offset."""

from __future__ import annotations

from typing import Any

import pytest

from treadle import __version__
from treadle.errors import InputError
from treadle.providers.base import LABEL_VERSION, JobRequest
from treadle.providers.docker.containers import JOB_RESTART_POLICY, container_config
from treadle.providers.engine import jobs
from treadle.providers.swarm.services import job_spec

SECOND = 10**9


def request(spec: dict[str, Any] | None = None, **flags: Any) -> JobRequest:
    fields: dict[str, Any] = {
        "job_id": None,
        "image": "web:1",
        "command": None,
        "env": {},
        "cpus": None,
        "mem": None,
        "spec": spec,
        "labels": {LABEL_VERSION: __version__},
    }
    return JobRequest(**{**fields, **flags})


def test_job_ids_are_metronome_ids_that_docker_and_swarm_take() -> None:
    for good in ("db-migrate", "ci.db-migrate", "a", "x1.y-2", "a" * jobs.MAX_JOB_ID):
        assert jobs.check_job_id(good) == good
    for bad in ("", "Migrate", "db_migrate", "-a", "a-", "a..b", "ci.-x", "a" * 55, "a b"):
        with pytest.raises(InputError, match="invalid job id"):
            jobs.check_job_id(bad)
    # Swarm takes no dot in a service name, and the whole name fits in 63 characters.
    assert jobs.resource_name("ci.db-migrate", "0a1b2c3d") == "ci-db-migrate-0a1b2c3d"
    assert len(jobs.resource_name("a" * jobs.MAX_JOB_ID, "0a1b2c3d")) == 63


def test_the_job_id_defaults_to_the_images_name() -> None:
    assert jobs.default_job_id("ghcr.io/acme/db-migrate:7") == "db-migrate"
    assert jobs.default_job_id("localhost:5000/my_tool@sha256:" + "0" * 64) == "my-tool"
    assert jobs.default_job_id("python:3.12") == "python"
    first, second = jobs.plan(request()), jobs.plan(request())
    assert first.job_id == second.job_id == "web"
    assert first.run_id != second.run_id, "every run has a name of its own"
    assert first.name == f"web-{first.run_id}"


def test_flags_are_laid_over_the_spec() -> None:
    spec = {
        "image": "tool:1",
        "command": "migrate --all",
        "environment": {"LEVEL": "info", "NAME": "spec"},
        "labels": {"team": "ci"},
        "cpus": 2,
        "mem_limit": "1g",
        "stop_grace_period": "30s",
    }
    from_spec = jobs.plan(request(spec, image=None, job_id="ci.migrate"))
    w = from_spec.workload
    assert (w.image, w.entrypoint, w.command) == ("tool:1", None, ["migrate", "--all"])
    assert (w.nano_cpus, w.memory, w.stop_grace) == (2 * SECOND, 2**30, 30 * SECOND)
    assert from_spec.labels == {
        "team": "ci",
        LABEL_VERSION: __version__,
        jobs.LABEL_JOB: "ci.migrate",
        jobs.LABEL_JOB_RUN: from_spec.run_id,
    }

    flags = jobs.plan(
        request(spec, image="tool:2", command="echo $NAME", env={"NAME": "flag"}, cpus=0.5, mem=64)
    )
    w = flags.workload
    assert (w.image, w.entrypoint, w.command) == ("tool:2", ["sh", "-c"], ["echo $NAME"])
    assert w.environment == ("LEVEL=info", "NAME=flag")
    assert (w.nano_cpus, w.memory) == (SECOND // 2, 64 * 2**20)
    assert jobs.plan(request()).workload.stop_grace == jobs.STOP_GRACE


@pytest.mark.parametrize(
    ("spec", "flags", "message"),
    [
        ({"ports": ["80"]}, {}, "spec: ports is not for a job"),
        ({"healthcheck": {"test": "true"}}, {}, "spec: healthcheck is not for a job"),
        ({"labels": {"treadle.job": "x"}}, {}, "treadle.* labels are treadle's own"),
        ({"image": 7}, {"image": None}, "spec: image must be a string"),
        (None, {"image": None, "job_id": "ci.migrate"}, "the job has no image"),
        (None, {"job_id": "Migrate"}, "invalid job id 'Migrate'"),
    ],
)
def test_what_a_job_cannot_be_is_refused(
    spec: dict[str, Any] | None, flags: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError, match=message):
        jobs.plan(request(spec, **flags))


def test_a_job_container_runs_once_and_a_job_service_once_on_one_task() -> None:
    run = jobs.plan(request(command="make", job_id="ci.build"))
    config = container_config(run.workload, run.labels, JOB_RESTART_POLICY)
    assert (config["Entrypoint"], config["Cmd"]) == (["sh", "-c"], ["make"])
    assert config["HostConfig"]["RestartPolicy"] == {"Name": "no"}
    assert config["StopTimeout"] == jobs.STOP_GRACE // SECOND
    assert config["Labels"][jobs.LABEL_JOB_RUN] == run.run_id

    service = job_spec(run, None)
    assert service["Name"] == f"ci-build-{run.run_id}"
    assert service["Mode"] == {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}}
    template = service["TaskTemplate"]
    assert template["RestartPolicy"] == {"Condition": "none"}
    assert (template["ContainerSpec"]["Command"], template["ContainerSpec"]["Args"]) == (
        ["sh", "-c"],
        ["make"],
    )
    assert "Placement" not in template, "a job without an output file runs on any node"
    pinned = job_spec(run, "node-1")["TaskTemplate"]["Placement"]
    assert pinned == {"Constraints": ["node.id==node-1"]}


def test_a_log_is_read_on_from_its_offset_in_whole_characters() -> None:
    log = "première ligne\n".encode()
    cut = log.index("è".encode()) + 1
    text, offset = jobs.decoded_from(log[:cut], 0)
    assert (text, offset) == ("premi", cut - 1), "half a character waits for the rest"
    assert jobs.decoded_from(log, offset) == ("ère ligne\n", len(log))
    assert jobs.decoded_from(log, len(log)) == ("", len(log))
