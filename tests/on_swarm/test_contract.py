"""The Swarm provider on a real single-node swarm, through the shared contract suite
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
from treadle.providers.swarm import SwarmProvider
from treadle.waiting import Deadline

pytestmark = pytest.mark.docker


class TestSwarm(
    OnEngine,
    EngineJobs,
    ProviderContract,
    StageContract,
    ComposeContract,
    ProvenanceContract,
    JobProvenanceContract,
):
    keeps_secrets = True

    @pytest.fixture
    def connection_args(self) -> list[str]:
        return ["--provider", "swarm"]

    @pytest.fixture
    def provider(self, swarm: Any) -> Iterator[SwarmProvider]:
        provider = SwarmProvider(deadline=Deadline(60), console=Console())
        yield provider
        provider.close()
