"""The in-memory provider through the shared contract suite: the seam called directly,
and the stages run through the CLI with the provider registered by name for the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from contract import ProvenanceContract, ProviderContract, StageContract
from memory import MemoryProvider, MemorySettings, Store

from treadle.providers import registry


class TestMemory(ProviderContract, StageContract, ProvenanceContract):
    @pytest.fixture
    def store(self, monkeypatch: pytest.MonkeyPatch) -> Store:
        monkeypatch.setitem(
            registry.REGISTRY,
            "memory",
            registry.Entry("memory:MemoryProvider", "memory:MemorySettings"),
        )
        return Store.open(MemorySettings().store)

    @pytest.fixture
    def connection_args(self, store: Store) -> list[str]:
        return ["--provider", "memory"]

    @pytest.fixture
    def provider(self, store: Store) -> Iterator[MemoryProvider]:
        provider = MemoryProvider(store=store)
        yield provider
        provider.close()

    @pytest.fixture
    def region(self) -> str:
        return "eu-west"

    @pytest.fixture
    def image(self) -> str:
        return "registry.example/web:1.0"

    @pytest.fixture
    def image_v2(self) -> str:
        return "registry.example/web:2.0"

    @pytest.fixture
    def unhealthy_image(self, store: Store) -> str:
        return store.crashing("registry.example/web:crashes")
