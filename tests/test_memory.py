"""The in-memory provider's own promises, beyond the contract: scripted health, faults
that fire on the Nth call, a killed process, and one state under many threads."""

from __future__ import annotations

import threading

import pytest
from memory import Killed, MemoryProvider, MemorySettings, Store

from treadle import __version__
from treadle.errors import ProviderError, ServerGroupGone
from treadle.naming import Cluster, ServerGroupName
from treadle.providers.base import (
    LABEL_DISABLED_INSTANCES,
    LeaseKey,
    NewServerGroup,
    server_group_labels,
)

REGION = "local"
IMAGE = "web:1"


def make(provider: MemoryProvider, sequence: int = 0, instances: int = 2, image: str = IMAGE):
    name = ServerGroupName(Cluster("web", "prod"), sequence)
    new = NewServerGroup(
        name, REGION, image, instances, None, server_group_labels(name, __version__, "t")
    )
    return provider.create(REGION, provider.definition(new))


@pytest.fixture
def provider() -> MemoryProvider:
    return MemoryProvider(store=Store())


@pytest.mark.parametrize(
    ("script", "reads", "expected"),
    [
        pytest.param(None, 1, (2, 2, 0), id="healthy-at-the-first-read"),
        pytest.param(("slow", 3), 2, (2, 0, 0), id="slow-not-yet-after-2-reads"),
        pytest.param(("slow", 3), 3, (2, 2, 0), id="slow-healthy-after-3-reads"),
        pytest.param(("never_healthy",), 5, (2, 0, 0), id="never-healthy-runs-but-fails-checks"),
        pytest.param(("crashing",), 2, (0, 0, 4), id="crashing-counts-every-failure"),
    ],
)
def test_health_is_scripted_per_image(provider, script, reads, expected) -> None:
    if script is not None:
        getattr(provider.store, script[0])(IMAGE, *script[1:])
    group = make(provider)
    for _ in range(reads):
        health = provider.health(group)
    assert (health.running, health.healthy, health.failed) == expected


def test_instances_move_to_the_size_one_read_at_a_time(provider) -> None:
    group = make(provider, instances=2)
    assert provider.store.instances_running(REGION, group.name) == 0
    provider.health(group)
    provider.resize(group, 1)
    assert provider.store.instances_running(REGION, group.name) == 2
    assert provider.health(group).ok
    assert provider.store.instances_running(REGION, group.name) == 1


def test_a_disabled_group_counts_the_instances_still_stopping(provider) -> None:
    group = make(provider, instances=2)
    provider.health(group)
    provider.disable(group, {LABEL_DISABLED_INSTANCES: "2"})
    stopping = provider.server_group(REGION, group.name)
    assert (stopping.enabled, stopping.instances) == (False, 2)
    assert provider.health(group).ok
    assert provider.server_group(REGION, group.name).instances == 0


@pytest.mark.parametrize("after", [False, True], ids=["before-acting", "after-acting"])
def test_a_fault_fires_on_the_nth_call_of_a_method_only(provider, after) -> None:
    group = make(provider)
    provider.fail(2, "resize", after=after)
    provider.resize(group, 3)
    provider.health(group)
    with pytest.raises(ProviderError):
        provider.resize(group, 5)
    assert provider.store.view(REGION, group.name).instances == (5 if after else 3)
    provider.resize(group, 4)
    assert [c.method for c in provider.called("resize")] == ["resize"] * 3


def test_a_killed_process_answers_nothing_more(provider) -> None:
    group = make(provider)
    provider.kill(1, "destroy", after=True)
    with pytest.raises(Killed):
        provider.destroy(group)
    assert provider.dead and provider.store.view(REGION, group.name) is None
    with pytest.raises(Killed):
        provider.server_groups(REGION)
    # Another thread of the dead process (its lease renewer) never gets an answer.
    stuck = threading.Thread(target=provider.server_groups, args=(REGION,), daemon=True)
    stuck.start()
    stuck.join(0.05)
    assert stuck.is_alive()


def test_a_hung_call_waits_until_let_go(provider) -> None:
    fault = provider.hang(1, "server_groups")
    done = threading.Event()
    threading.Thread(target=lambda: (provider.server_groups(REGION), done.set())).start()
    assert fault.fired.wait(1) and not done.wait(0.05)
    fault.hang.set()
    assert done.wait(1)


def test_a_gone_group_is_reported_gone(provider) -> None:
    group = make(provider)
    provider.destroy(group)
    provider.destroy(group)
    with pytest.raises(ServerGroupGone):
        provider.health(group)
    with pytest.raises(ServerGroupGone):
        provider.resize(group, 1)


def test_of_many_racing_processes_exactly_one_makes_a_lease_record() -> None:
    store = Store()
    key = LeaseKey(REGION, "web-prod")
    go = threading.Barrier(16)
    made: list[object] = []

    def take() -> None:
        provider = MemoryProvider(store=store)
        go.wait()
        lease = provider.create_lease(key, {}, "2030-01-01T00:00:00Z")
        if lease is not None:
            made.append(lease)

    threads = [threading.Thread(target=take) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1 and store.leases[key] == made[0]


def test_processes_share_a_store_by_name() -> None:
    store = Store.open("test-processes-share")
    make(MemoryProvider(store=store))
    other = MemoryProvider(MemorySettings("test-processes-share"))
    assert [g.name for g in other.server_groups(REGION)] == ["web-prod-v000"]
    assert other.calls and not MemoryProvider(store=store).calls
