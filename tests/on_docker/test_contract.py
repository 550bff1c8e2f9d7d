"""The Docker provider on a real engine, through the shared contract suite
(run-job and a Compose service included)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from contract import (
    ComposeContract,
    JobProvenanceContract,
    ProvenanceContract,
    ProviderContract,
    StageContract,
)
from dockerish import EngineJobs, OnEngine

from treadle.console import Console
from treadle.providers.docker import DockerProvider
from treadle.waiting import Deadline

pytestmark = pytest.mark.docker


class TestDocker(
    OnEngine,
    EngineJobs,
    ProviderContract,
    StageContract,
    ComposeContract,
    ProvenanceContract,
    JobProvenanceContract,
):
    @pytest.fixture
    def connection_args(self) -> list[str]:
        return ["--provider", "docker"]

    @pytest.fixture
    def provider(self, engine: Any) -> Iterator[DockerProvider]:
        provider = DockerProvider(deadline=Deadline(60), console=Console())
        yield provider
        provider.close()
