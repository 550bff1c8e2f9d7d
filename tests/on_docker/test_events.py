"""Waiting on the Docker engine's events: a deploy's wait and a run-job wait wake when
the engine tells of their own containers (started, died, changed health), and only
then; news of other containers does not wake them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from dockerish import IMAGE, remove_labelled

from treadle.console import Console
from treadle.naming import Cluster, ServerGroupName
from treadle.providers.base import JobRequest, NewServerGroup, ServerGroup, server_group_labels
from treadle.providers.docker import DockerProvider
from treadle.providers.engine.jobs import LABEL_JOB
from treadle.waiting import Deadline, Wakeup

pytestmark = pytest.mark.docker

# Far longer than the engine takes to tell: a wait that sleeps this long heard nothing.
QUIET = 3.0


@pytest.fixture
def provider(engine: Any) -> Iterator[DockerProvider]:
    provider = DockerProvider(deadline=Deadline(60), console=Console())
    yield provider
    provider.close()


def create(provider: DockerProvider, region: str, cluster: Cluster) -> ServerGroup:
    name = ServerGroupName(cluster, 0)
    labels = server_group_labels(name, "test", "2026-01-01T00:00:00.000Z")
    new = NewServerGroup(name, region, IMAGE, 1, None, labels)
    return provider.create(region, provider.definition(new))


def attached(wakeup: Wakeup) -> None:
    """Once the stream is live the wait is woken once, to look at what came before."""
    assert wakeup.sleep(10), "the engine's event stream did not attach"
    assert wakeup.live


def test_a_wait_wakes_when_its_server_group_changes(provider: DockerProvider, region: str) -> None:
    group = create(provider, region, Cluster("web", "prod"))
    with provider.watch(group) as wakeup:
        attached(wakeup)
        assert not wakeup.sleep(QUIET), "woken with no news"
        provider.resize(group, 2)  # a second container starts
        assert wakeup.sleep(10), "not woken when the group's new container started"


def test_news_of_another_group_does_not_wake_a_wait(provider: DockerProvider, region: str) -> None:
    group = create(provider, region, Cluster("web", "prod"))
    other = create(provider, region, Cluster("api", "prod"))
    with provider.watch(group) as wakeup:
        attached(wakeup)
        provider.resize(other, 2)
        assert not wakeup.sleep(QUIET), "woken by another group's container"


def test_a_run_job_wait_wakes_when_the_jobs_container_ends(
    provider: DockerProvider, engine: Any
) -> None:
    job_id = "t" + uuid.uuid4().hex[:8]
    try:
        request = JobRequest(job_id, IMAGE, "sleep 1.5", {}, None, None, None, {})
        run = provider.start_job(provider.job_definition(request))
        with provider.watch_job(run) as wakeup:
            assert wakeup is not None
            attached(wakeup)
            assert not provider.job_status(run).finished
            assert wakeup.sleep(10), "not woken when the job's container died"
            assert provider.job_status(run).finished
    finally:
        remove_labelled(engine, f"{LABEL_JOB}={job_id}")
