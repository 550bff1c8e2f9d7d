"""A stage whose decision depends on the cluster it changes (a relative resize, a target
chosen by age or size, instances chosen to terminate) keeps that decision on the cluster:
its retry (same run key, same arguments) carries out the same decision, never one more
step; killed half way, its rerun finishes it. Another run decides anew."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from memory import CHANGES, Killed, MemoryProvider, Store, groups_of, runtime, seed, staged

from treadle.providers.base import LeaseKey
from treadle.stages import journal, lease
from treadle.stages.destroy import destroy
from treadle.stages.resize import Size, resize
from treadle.stages.runtime import Runtime
from treadle.stages.selection import Selector
from treadle.stages.terminate import TerminateRequest, terminate_instances

REGION = "local"
Stage = Callable[[Runtime], object]

pytestmark = pytest.mark.usefixtures("fast_leases")


def state(store: Store) -> dict[str, int | None]:
    """Each group's size when enabled (None when disabled)."""
    return {
        name: instances if enabled else None
        for name, (enabled, instances) in groups_of(store, REGION, "web-prod").items()
    }


def three_groups() -> Store:
    store = Store()
    seed(store, "web-prod-v000", 0, enabled=False, capacity=2)
    seed(store, "web-prod-v001", 4)
    seed(store, "web-prod-v002", 4)
    return store


def run(store: Store, stage: Stage, run_key: str | None = "job-1") -> MemoryProvider:
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, 5.0, stage="stage", run_key=run_key)) as rt:
        stage(rt)
    return provider


def killed(store: Store, stage: Stage, nth: int, when: str) -> None:
    provider = MemoryProvider(store=store)
    provider.kill(nth, *CHANGES, after=when == "after")
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(lease, "TTL", 0.0)
        stage(runtime(provider, 5.0, stage="stage", run_key="job-1"))


def scale_up(rt: Runtime) -> object:
    return resize(rt, Selector(REGION, server_group="web-prod-v002"), Size(scale_up=2))


def destroy_oldest(rt: Runtime) -> object:
    return destroy(rt, Selector(REGION, cluster="web-prod", target="oldest"))


def shrink_by_two(rt: Runtime) -> object:
    request = TerminateRequest(
        Selector(REGION, server_group="web-prod-v002"), count=2, decrement=True
    )
    return terminate_instances(rt, request)


ONCE: dict[str, dict[str, int | None]] = {
    "scale-up": {"web-prod-v000": None, "web-prod-v001": 4, "web-prod-v002": 6},
    "destroy-oldest": {"web-prod-v001": 4, "web-prod-v002": 4},
    "shrink-by-two": {"web-prod-v000": None, "web-prod-v001": 4, "web-prod-v002": 2},
}
STAGES = {"scale-up": scale_up, "destroy-oldest": destroy_oldest, "shrink-by-two": shrink_by_two}


@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_retry_of_a_finished_run_goes_no_further(name: str) -> None:
    store = three_groups()
    run(store, STAGES[name])
    assert state(store) == ONCE[name]
    retry = run(store, STAGES[name])
    assert state(store) == ONCE[name]
    assert [method for method, _ in retry.changes()] in ([], ["resize"]), retry.changes()


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("name", sorted(STAGES))
def test_a_run_killed_at_its_change_is_finished_by_its_rerun(name: str, when: str) -> None:
    store = three_groups()
    killed(store, STAGES[name], 1, when)
    run(store, STAGES[name])
    assert state(store) == ONCE[name]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_another_run_decides_anew(name: str) -> None:
    store = three_groups()
    run(store, STAGES[name], "job-1")
    run(store, STAGES[name], "job-2")
    assert state(store) != ONCE[name]


def test_without_a_run_key_nothing_is_kept() -> None:
    store = three_groups()
    run(store, scale_up, None)
    run(store, scale_up, None)
    assert state(store)["web-prod-v002"] == 8
    assert LeaseKey(REGION, "web-prod", claim=journal.JOURNAL) not in store.leases


def test_two_resizes_in_one_job_are_two_decisions_and_the_journal_keeps_the_last() -> None:
    store = three_groups()
    run(store, scale_up)
    run(store, lambda rt: resize(rt, Selector(REGION, server_group="web-prod-v001"), Size(1)))
    assert state(store) == {"web-prod-v000": None, "web-prod-v001": 1, "web-prod-v002": 6}
    for n in range(journal.KEEP + 5):
        run(store, scale_up, f"job-{n + 2}")
    record = store.leases[LeaseKey(REGION, "web-prod", claim=journal.JOURNAL)]
    assert sum(1 for k in record.labels if k.startswith(journal.PREFIX)) == journal.KEEP
