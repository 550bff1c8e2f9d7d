"""What only the Docker provider does with a job run (the scenarios both engines share are
in the contract, tests/on_docker/test_contract.py): how a container's state reads as the
run's status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from treadle.console import Console
from treadle.providers.base import JobRun, JobStatus
from treadle.providers.docker import DockerProvider
from treadle.waiting import Deadline

pytestmark = pytest.mark.docker

NO_SHIM = 'failed to create shim task: exec: "migrate": executable file not found in $PATH'


@pytest.fixture
def provider(engine: Any) -> Iterator[DockerProvider]:
    provider = DockerProvider(deadline=Deadline(60), console=Console())
    yield provider
    provider.close()


@pytest.mark.parametrize(
    ("state", "status"),
    [
        ({"Status": "created", "ExitCode": 0}, JobStatus("created", finished=False)),
        ({"Status": "running", "ExitCode": 0}, JobStatus("running", finished=False)),
        (
            {"Status": "exited", "ExitCode": 0},
            JobStatus("exited", finished=True, succeeded=True, exit_code=0),
        ),
        (
            {"Status": "exited", "ExitCode": 3},
            JobStatus("exited", finished=True, exit_code=3, message="its container exited"),
        ),
        (
            {"Status": "exited", "ExitCode": 137, "OOMKilled": True},
            JobStatus(
                "exited",
                finished=True,
                exit_code=137,
                message="killed for using more memory than its limit (--mem, mem_limit)",
            ),
        ),
        (
            {"Status": "created", "ExitCode": 127, "Error": NO_SHIM},
            JobStatus("created", finished=True, exit_code=127, message=f"cannot start: {NO_SHIM}"),
        ),
    ],
)
def test_a_containers_state_is_the_runs_status(
    provider: DockerProvider,
    monkeypatch: pytest.MonkeyPatch,
    state: dict[str, Any],
    status: JobStatus,
) -> None:
    inspected = {"Id": "0" * 64, "State": {"Error": "", "OOMKilled": False, **state}}
    monkeypatch.setattr(provider.api, "inspect_container", lambda name: inspected)
    assert provider.job_status(JobRun("ci.migrate", "0a1b2c3d")) == status
