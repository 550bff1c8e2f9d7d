"""The Marathon provider against the emulator, through the shared contract suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from contract import ProvenanceContract, ProviderContract, StageContract
from emulator import MarathonEmulator

from treadle.console import Console
from treadle.providers.marathon import MarathonProvider
from treadle.providers.marathon.settings import MarathonSettings
from treadle.waiting import Deadline

FAILING = "registry.example/web:crashes"


class TestMarathon(ProviderContract, StageContract, ProvenanceContract):
    @pytest.fixture
    def connection_args(self, marathon: MarathonEmulator) -> list[str]:
        return ["--marathon-url", marathon.url]

    @pytest.fixture
    def provider(self, marathon: MarathonEmulator) -> Iterator[MarathonProvider]:
        provider = MarathonProvider(
            MarathonSettings(marathon_url=marathon.url), deadline=Deadline(60), console=Console()
        )
        yield provider
        provider.close()

    @pytest.fixture
    def region(self) -> str:
        return "/prod/us-east"

    @pytest.fixture
    def image(self) -> str:
        return "registry.example/web:1.0"

    @pytest.fixture
    def image_v2(self) -> str:
        return "registry.example/web:2.0"

    @pytest.fixture
    def unhealthy_image(self, marathon: MarathonEmulator) -> str:
        marathon.failing_images.add(FAILING)
        return FAILING
