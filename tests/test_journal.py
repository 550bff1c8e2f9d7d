"""A stage whose decision depends on the cluster it changes (a relative resize, a target
chosen by age or size, instances chosen to terminate) keeps that decision on the cluster:
its retry (same run key, same arguments) carries out the same decision, never one more
step; killed half way, its rerun finishes it. Another run decides anew."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from memory import CHANGES, Killed, MemoryProvider, Store, groups_of, runtime, seed, staged

from treadle.errors import NotFound
from treadle.naming import Cluster
from treadle.providers.base import LeaseKey
from treadle.stages import journal, lease
from treadle.stages.cluster import ClusterRequest, cluster_stage
from treadle.stages.deploy import deploy
from treadle.stages.deploy_plan import Request
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


def run(
    store: Store, stage: Stage, run_key: str | None = "job-1", attempt: str | None = None
) -> MemoryProvider:
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, 5.0, stage="stage", run_key=run_key, attempt=attempt)) as rt:
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


def a_canary_over_two_serving() -> Store:
    """web-prod-v001 serving 2, v002 serving 4, and v003 a canary of 1 (to grow to 4)."""
    store = Store()
    seed(store, "web-prod-v001", 2)
    seed(store, "web-prod-v002", 4)
    request = Request(Cluster("web", "prod"), "web:2", strategy="canary", canary_percent=25)
    with staged(runtime(MemoryProvider(store=store), stage="deploy")) as rt:
        deploy(rt, request)
    return store


@pytest.mark.parametrize("action", ["shrink", "scale-down"])
def test_a_cluster_stage_killed_and_run_again_acts_on_what_it_chose(action: str) -> None:
    """Ranked by size, the groups change rank as the stage changes them (a canary counts
    at its full size only while the groups it replaces serve): the rerun acts on the
    groups its first attempt chose, and ends as an uninterrupted run does."""
    request = ClusterRequest(action, "web-prod", prefer_larger=True, allow_active=True, force=True)

    def stage(rt: Runtime) -> object:
        return cluster_stage(rt, request)

    store = a_canary_over_two_serving()
    count = len(run(store, stage).changes())
    once = state(store)
    for nth in range(1, count + 1):
        for when in ("before", "after"):
            store = a_canary_over_two_serving()
            killed(store, stage, nth, when)
            run(store, stage)
            assert state(store) == once, (nth, when)


def test_the_same_step_twice_in_one_attempt_acts_twice_and_a_later_attempt_once() -> None:
    """Where the CI system tells attempts apart (GitHub's run attempt, GitLab's job id),
    two identical steps of one attempt are two steps; its retry is one."""
    store = three_groups()
    run(store, scale_up, attempt="github-1")
    run(store, scale_up, attempt="github-1")
    assert state(store)["web-prod-v002"] == 8
    run(store, scale_up, attempt="github-2")
    assert state(store)["web-prod-v002"] == 8


def test_a_decision_the_cluster_no_longer_fits_is_made_anew() -> None:
    """Another run resized the group since: the retry does not undo that."""
    store = three_groups()
    run(store, scale_up, "job-1")
    run(store, lambda rt: resize(rt, Selector(REGION, server_group="web-prod-v002"), Size(10)))
    run(store, scale_up, "job-1")
    assert state(store)["web-prod-v002"] == 12


def test_a_cluster_stage_keeps_no_decision_when_another_region_stops_it() -> None:
    """Decided in one region, stopped by the next before any change: nothing is kept, so
    its retry decides on the cluster as it is then (a group deployed meanwhile counts)."""
    store = three_groups()
    request = ClusterRequest("disable", "web-prod", regions=(REGION, "west"))
    with pytest.raises(NotFound):
        run(store, lambda rt: cluster_stage(rt, request))
    assert LeaseKey(REGION, "web-prod", claim=journal.JOURNAL) not in store.leases
