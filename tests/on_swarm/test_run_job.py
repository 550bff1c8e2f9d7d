"""What only the Swarm provider does with a job run (the scenarios both engines share are
in the contract, tests/on_swarm/test_contract.py): how its task's state reads as the run's
status, and an output file that is out of reach."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from treadle.console import Console
from treadle.errors import StageFailed
from treadle.providers.base import JobRun, JobStatus
from treadle.providers.swarm import SwarmProvider
from treadle.waiting import Deadline

pytestmark = pytest.mark.docker

RUN = JobRun("ci.migrate", "0a1b2c3d")


@pytest.fixture
def provider(swarm: Any) -> Iterator[SwarmProvider]:
    provider = SwarmProvider(deadline=Deadline(60), console=Console())
    yield provider
    provider.close()


def task(
    state: str, exit_code: int = 0, container: str = "0" * 64, err: str = ""
) -> dict[str, Any]:
    status = {
        "State": state,
        "Message": "started",
        "ContainerStatus": {"ContainerID": container, "ExitCode": exit_code},
    }
    return {"NodeID": "other-node", "Status": {**status, **({"Err": err} if err else {})}}


@pytest.mark.parametrize(
    ("tasks", "status"),
    [
        ([], JobStatus("new", finished=False)),
        ([task("running")], JobStatus("running", finished=False)),
        ([task("complete")], JobStatus("complete", finished=True, succeeded=True, exit_code=0)),
        (
            [task("failed", 3, err="task: non-zero exit (3)")],
            JobStatus("failed", finished=True, exit_code=3, message="task: non-zero exit (3)"),
        ),
        (
            [task("rejected", container="", err="No such image: tool:9")],
            JobStatus("rejected", finished=True, message="No such image: tool:9"),
        ),
    ],
)
def test_a_tasks_state_is_the_runs_status(
    provider: SwarmProvider,
    monkeypatch: pytest.MonkeyPatch,
    tasks: list[dict[str, Any]],
    status: JobStatus,
) -> None:
    monkeypatch.setattr(provider.api, "tasks", lambda filters: tasks)
    assert provider.job_status(RUN) == status


def test_an_output_file_on_another_node_is_a_clear_failure(
    provider: SwarmProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A finished task whose container this node does not have.
    monkeypatch.setattr(provider.api, "tasks", lambda filters: [task("complete")])
    with pytest.raises(StageFailed, match="ran on swarm node other-node, and treadle copies"):
        provider.job_file(RUN, "result.json")
