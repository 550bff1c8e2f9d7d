"""The stages that undo or take out (promote, abort, rollback, disable-cluster) on the
in-memory provider, killed before and after each of their changes and run again: the
rerun finishes what the first attempt started, whatever it left half done (a group
marked disabled whose instances still run), and the cluster ends as an uninterrupted run
leaves it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from memory import CHANGES, Killed, MemoryProvider, Store, groups_of, runtime, seed, staged

from treadle.errors import NotFound, Refused, StageFailed
from treadle.naming import Cluster
from treadle.providers.base import ALIAS, LABEL_NETWORK, ServerGroup
from treadle.stages import lease
from treadle.stages.canary import CanaryRequest, abort, promote
from treadle.stages.clone import CloneRequest, clone
from treadle.stages.cluster import ClusterRequest, cluster_stage
from treadle.stages.deploy import deploy
from treadle.stages.deploy_plan import Request
from treadle.stages.enable_disable import enable
from treadle.stages.rollback import RollbackRequest, rollback
from treadle.stages.runtime import Runtime
from treadle.stages.selection import Selector

REGION = "local"
Stage = Callable[[Runtime, CanaryRequest], dict[str, object]]

# The cluster after each stage: name -> (enabled, instances).
PROMOTED = {"web-prod-v000": (False, 0), "web-prod-v001": (True, 4)}
ABORTED = {"web-prod-v000": (True, 4), "web-prod-v001": (False, 0)}


pytestmark = pytest.mark.usefixtures("fast_leases")


def a_canary() -> Store:
    """web-prod-v000 serving 4, and web-prod-v001 a canary of 1 beside it."""
    store = Store()
    seed(store, "web-prod-v000", 4)
    with staged(runtime(MemoryProvider(store=store), stage="deploy")) as rt:
        deploy(rt, Request(Cluster("web", "prod"), "web:2", strategy="canary", canary_instances=1))
    assert groups_of(store, REGION, "web-prod") == {
        "web-prod-v000": (True, 4),
        "web-prod-v001": (True, 1),
    }
    return store


def run(
    store: Store, stage: Stage, run_key: str | None = None, *, destroy: bool = False
) -> dict[str, object]:
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, 5.0, stage=stage.__name__, run_key=run_key)) as rt:
        return stage(rt, CanaryRequest("web-prod", destroy=destroy))


def killed(
    store: Store, stage: Stage, nth: int, when: str, run_key: str | None = None, **kwargs: bool
) -> None:
    """The stage's process dies at its nth change (before or after it is carried out);
    its lease is left behind, expired already."""
    provider = MemoryProvider(store=store)
    provider.kill(nth, *CHANGES, after=when == "after")
    rt = runtime(provider, 5.0, stage=stage.__name__, run_key=run_key)
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(lease, "TTL", 0.0)
        stage(rt, CanaryRequest("web-prod", **kwargs))


def settled(store: Store) -> dict[str, tuple[bool, int]]:
    """The cluster once what was stopped has stopped: a group's instances that still run
    count, however it is marked."""
    return {
        name: (enabled, store.instances_running(REGION, name))
        for name, (enabled, _) in groups_of(store, REGION, "web-prod").items()
    }


@pytest.mark.parametrize(
    ("first", "nth", "when", "rerun", "after"),
    [
        (promote, 1, "before", promote, PROMOTED),
        (promote, 1, "after", promote, PROMOTED),
        (promote, 2, "before", promote, PROMOTED),
        # Marked disabled, its instances still running: the rerun takes it out.
        (promote, 2, "after", promote, PROMOTED),
        (promote, 1, "after", abort, ABORTED),
        (promote, 2, "after", abort, ABORTED),
        (abort, 1, "before", abort, ABORTED),
        # The canary marked disabled, still running: the rerun takes it out.
        (abort, 1, "after", abort, ABORTED),
    ],
    ids=[
        "promote-killed-before-growing",
        "promote-killed-after-growing",
        "promote-killed-before-disabling",
        "promote-killed-after-disabling",
        "promote-killed-after-growing-then-abort",
        "promote-killed-after-disabling-then-abort",
        "abort-killed-before-disabling",
        "abort-killed-after-disabling",
    ],
)
def test_a_rerun_after_a_kill_finishes_the_stage(
    first: Stage, nth: int, when: str, rerun: Stage, after: dict[str, tuple[bool, int]]
) -> None:
    store = a_canary()
    killed(store, first, nth, when)
    result = run(store, rerun)
    assert result["server_group"] == "web-prod-v001"
    assert settled(store) == after


def test_promote_refuses_a_canary_whose_abort_was_cut_short() -> None:
    store = a_canary()
    killed(store, abort, 1, "after")
    before = settled(store)
    with pytest.raises(Refused, match="abort"):
        run(store, promote)
    assert settled(store) == before


def test_a_finished_promote_leaves_nothing_to_promote_or_abort() -> None:
    store = a_canary()
    run(store, promote)
    assert settled(store) == PROMOTED
    for stage in (promote, abort):
        with pytest.raises(Refused, match="promoted already"):
            run(store, stage)
    assert settled(store) == PROMOTED


# --- rollback, killed and run again -------------------------------------------------------


def three_versions() -> Store:
    """web-prod-v002 serving 3; v001 and v000 disabled, remembering 3."""
    store = Store()
    seed(store, "web-prod-v000", 0, enabled=False, capacity=3)
    seed(store, "web-prod-v001", 0, enabled=False, capacity=3)
    seed(store, "web-prod-v002", 3)
    return store


def rolled_back(store: Store, run_key: str, kill: tuple[int, str] | None = None) -> None:
    provider = MemoryProvider(store=store)
    rt = runtime(provider, 5.0, stage="rollback", run_key=run_key)
    if kill is None:
        with staged(rt):
            rollback(rt, RollbackRequest("web-prod"))
        return
    provider.kill(kill[0], *CHANGES, after=kill[1] == "after")
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(lease, "TTL", 0.0)
        rollback(rt, RollbackRequest("web-prod"))


ONE_BACK = {"web-prod-v000": (False, 0), "web-prod-v001": (True, 3), "web-prod-v002": (False, 0)}


@pytest.mark.parametrize(
    ("nth", "when", "run_key"),
    [
        (1, "before", "run-1"),
        (1, "after", "run-1"),
        (1, "after", "run-2"),
        (2, "before", "run-1"),
        (2, "before", "run-2"),
        (2, "after", "run-1"),
        (2, "after", "run-2"),
    ],
    ids=[
        "before-enabling",
        "after-enabling",
        "after-enabling-another-run",
        "before-disabling",
        "before-disabling-another-run",
        "after-disabling",
        "after-disabling-another-run",
    ],
)
def test_a_rollback_killed_and_run_again_goes_back_one_version(
    nth: int, when: str, run_key: str
) -> None:
    """Never two versions back, never two groups serving: a rerun finishes the rollback
    the killed attempt started (with the same run key, also one that had finished)."""
    store = three_versions()
    rolled_back(store, "run-1", kill=(nth, when))
    finished = settled(store) == ONE_BACK
    if finished and run_key != "run-1":
        return  # done, and another run's rollback would rightly go one further
    rolled_back(store, run_key)
    assert settled(store) == ONE_BACK


def test_a_second_rollback_of_another_run_goes_one_further() -> None:
    store = three_versions()
    rolled_back(store, "run-1")
    assert settled(store) == ONE_BACK
    rolled_back(store, "run-2")
    assert settled(store) == {
        "web-prod-v000": (True, 3),
        "web-prod-v001": (False, 0),
        "web-prod-v002": (False, 0),
    }


def test_a_disable_cluster_killed_and_run_again_leaves_nothing_running_it_disabled() -> None:
    store = Store()
    for n in range(3):
        seed(store, f"web-prod-v00{n}", 2)
    request = ClusterRequest("disable", "web-prod")
    provider = MemoryProvider(store=store)
    provider.kill(1, *CHANGES, after=True)
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(lease, "TTL", 0.0)
        cluster_stage(runtime(provider, 5.0, stage="disable-cluster"), request)
    with staged(runtime(MemoryProvider(store=store), 5.0, stage="disable-cluster")) as rt:
        cluster_stage(rt, request)
    assert settled(store) == {
        "web-prod-v000": (False, 0),
        "web-prod-v001": (False, 0),
        "web-prod-v002": (True, 2),
    }


# --- a deploy's rollback puts what it brings back behind the cluster's name -----------------


class AliasProvider(MemoryProvider):
    """A memory provider whose groups answer under their cluster's name (ALIAS): joining
    it is recorded."""

    capabilities = MemoryProvider.capabilities | {ALIAS}

    def __init__(self, store: Store) -> None:
        super().__init__(store=store)
        self.joined: list[str] = []

    def join(self, group: ServerGroup) -> None:
        self.joined.append(group.name)


def test_a_deploys_rollback_puts_the_group_it_enables_again_behind_the_name() -> None:
    """The old group, disabled before the deploy failed, is enabled again and joins its
    cluster's name once healthy, as every group brought back does."""
    store = Store()
    seed(store, "web-prod-v000", 2, labels={LABEL_NETWORK: "web-net"})
    provider = AliasProvider(store)
    provider.fail(1, "disable", after=True)
    request = Request(
        Cluster("web", "prod"), "web:2", strategy="red-black", rollback_on_failure=True
    )
    with pytest.raises(StageFailed), staged(runtime(provider, 5.0, stage="deploy")) as rt:
        deploy(rt, request)
    assert settled(store) == {"web-prod-v000": (True, 2), "web-prod-v001": (False, 0)}
    assert provider.joined[-1] == "web-prod-v000", provider.joined


# --- a canary deploy run again after its promote ------------------------------------------


def test_a_canary_deploy_run_again_after_its_promote_leaves_the_promoted_group_whole() -> None:
    """A CI's "re-run all jobs" runs the canary deploy again with its run key after the
    promote: it carries on with its group, which is no canary any more: nothing shrinks."""
    store = Store()
    seed(store, "web-prod-v000", 4)
    request = Request(Cluster("web", "prod"), "web:2", strategy="canary", canary_instances=1)
    with staged(runtime(MemoryProvider(store=store), stage="deploy", run_key="run-1")) as rt:
        deploy(rt, request)
    run(store, promote)
    assert settled(store) == PROMOTED
    with staged(runtime(MemoryProvider(store=store), stage="deploy", run_key="run-1")) as rt:
        result = deploy(rt, request)
    assert result["server_group"] == "web-prod-v001"
    assert settled(store) == PROMOTED


# --- rollback --to, killed and run again ----------------------------------------------------


@pytest.mark.parametrize("run_key", ["run-1", "run-2"])
def test_a_rollback_to_killed_while_taking_out_is_finished_by_its_rerun(run_key: str) -> None:
    store = three_versions()
    provider = MemoryProvider(store=store)
    rt = runtime(provider, 5.0, stage="rollback", run_key="run-1")
    provider.kill(2, *CHANGES, after=True)
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(lease, "TTL", 0.0)
        rollback(rt, RollbackRequest("web-prod", to="web-prod-v001"))
    rt = runtime(MemoryProvider(store=store), 5.0, stage="rollback", run_key=run_key)
    with staged(rt):
        rollback(rt, RollbackRequest("web-prod", to="web-prod-v001"))
    assert settled(store) == ONE_BACK


# --- rollback and another canary while a canary is in flight --------------------------------


def canary_over_two_versions() -> Store:
    """web-prod-v000 disabled (remembering 4), v001 serving 4, v002 a canary of 1."""
    store = Store()
    seed(store, "web-prod-v000", 0, enabled=False, capacity=4)
    seed(store, "web-prod-v001", 4)
    request = Request(Cluster("web", "prod"), "web:3", strategy="canary", canary_instances=1)
    with staged(runtime(MemoryProvider(store=store), stage="deploy")) as rt:
        deploy(rt, request)
    return store


CANARY_ROLLED_BACK = {
    "web-prod-v000": (False, 0),
    "web-prod-v001": (True, 4),
    "web-prod-v002": (False, 0),
}


def test_a_rollback_during_a_canary_takes_the_canary_out_and_nothing_older_comes_back() -> None:
    """The version before the canary is the one still serving beside it: rolling back takes
    the canary out; the version before that stays disabled (not a third group serving)."""
    store = canary_over_two_versions()
    with staged(runtime(MemoryProvider(store=store), 5.0, stage="rollback")) as rt:
        result = rollback(rt, RollbackRequest("web-prod"))
    assert result["server_group"] == "web-prod-v001"
    assert result["disabled_server_groups"] == ["web-prod-v002"]
    assert settled(store) == CANARY_ROLLED_BACK


@pytest.mark.parametrize("to", [None, "web-prod-v001"])
@pytest.mark.parametrize(
    ("when", "run_key"),
    [("after", "run-1"), ("after", "run-2"), ("finished", "run-1")],
    ids=["killed-taking-out", "killed-taking-out-another-run", "finished"],
)
def test_a_rollback_to_a_group_serving_already_is_finished_not_taken_further(
    when: str, run_key: str, to: str | None
) -> None:
    """Nothing is written on a group that served already: the group taken out names it as
    the one that disabled it, and the rerun (or a retry of the finished run) finds that."""
    store = canary_over_two_versions()
    if when == "finished":
        rolled_back(store, "run-1")
    else:
        rolled_back(store, "run-1", kill=(1, when))
    assert settled(store)["web-prod-v001"] == (True, 4)
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, 5.0, stage="rollback", run_key=run_key)) as rt:
        result = rollback(rt, RollbackRequest("web-prod", to=to))
    assert result["server_group"] == "web-prod-v001"
    assert settled(store) == CANARY_ROLLED_BACK


def test_a_rollback_that_would_leave_others_serving_is_refused_with_nothing_changed() -> None:
    store = Store()
    for n in range(3):
        seed(store, f"web-prod-v00{n}", 2)
    provider = MemoryProvider(store=store)
    for to in (None, "web-prod-v000"):
        with (
            pytest.raises(Refused, match="also serve"),
            staged(runtime(provider, 5.0, stage="rollback")) as rt,
        ):
            rollback(rt, RollbackRequest("web-prod", to=to))
    assert provider.changes() == []
    assert settled(store) == {f"web-prod-v00{n}": (True, 2) for n in range(3)}


def test_a_second_canary_waits_until_the_first_is_promoted_or_aborted() -> None:
    """Aborting a canary deployed over another would grow the older canary to full size
    untested; promoting it would take out the older one: refused, nothing changed."""
    store = a_canary()
    before = settled(store)
    request = Request(Cluster("web", "prod"), "web:3", strategy="canary", canary_instances=1)
    provider = MemoryProvider(store=store)
    with (
        pytest.raises(Refused, match="web-prod-v001 in local is a canary in flight"),
        staged(runtime(provider, stage="deploy")) as rt,
    ):
        deploy(rt, request)
    assert provider.changes() == [] and settled(store) == before
    run(store, promote)
    with staged(runtime(MemoryProvider(store=store), stage="deploy")) as rt:
        assert deploy(rt, request)["server_group"] == "web-prod-v002"
    assert settled(store) == {**PROMOTED, "web-prod-v002": (True, 1)}


# --- a CI's retry of a promote or abort that finished before its result was written ---------


@pytest.mark.parametrize(("stage", "after"), [(promote, PROMOTED), (abort, ABORTED)])
def test_a_finished_promote_or_abort_run_again_with_its_run_key_finds_its_work_done(
    stage: Stage, after: dict[str, tuple[bool, int]]
) -> None:
    """The job died after its work, before its result: its retry (same run key) exits 0
    with the same result and changes nothing; another run is refused as before."""
    store = a_canary()
    first = run(store, stage, "job-1")
    assert settled(store) == after
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, 5.0, stage=stage.__name__, run_key="job-1")) as rt:
        again = stage(rt, CanaryRequest("web-prod"))
    assert provider.changes() == [] and settled(store) == after
    assert again == first
    with pytest.raises(Refused):
        run(store, stage, "job-2")


def test_an_abort_destroy_killed_before_destroying_is_finished_by_its_retry() -> None:
    store = a_canary()
    killed(store, abort, 2, "before", "job-1", destroy=True)
    assert settled(store)["web-prod-v001"] == (False, 0)
    result = run(store, abort, "job-1", destroy=True)
    assert result["destroyed"] is True
    assert settled(store) == {"web-prod-v000": (True, 4)}


def test_an_enable_killed_after_its_call_is_waited_for_by_its_retry() -> None:
    """The retry finds the group enabled already, its instances not started yet: it says
    so, and returns only once they are healthy, as the first attempt would have."""
    store = Store()
    seed(store, "web-prod-v000", 0, enabled=False, capacity=2)
    seed(store, "web-prod-v001", 2)
    selector = Selector(REGION, server_group="web-prod-v000")
    provider = MemoryProvider(store=store)
    provider.kill(1, *CHANGES, after=True)
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(lease, "TTL", 0.0)
        enable(runtime(provider, 5.0, stage="enable"), selector)
    assert store.instances_running(REGION, "web-prod-v000") == 0
    with staged(runtime(MemoryProvider(store=store), 5.0, stage="enable")) as rt:
        result = enable(rt, selector)
    assert result["changed"] is False and result["instances"] == 2
    assert store.instances_running(REGION, "web-prod-v000") == 2


# --- several regions: every one checked before any is changed -------------------------------


def test_a_rollback_refused_in_one_region_changes_no_other() -> None:
    store = Store()
    seed(store, "web-prod-v000", 0, region="east", enabled=False, capacity=2)
    seed(store, "web-prod-v001", 2, region="east")
    seed(store, "web-prod-v000", 2, region="west")
    provider = MemoryProvider(store=store)
    request = RollbackRequest("web-prod", regions=("east", "west"))
    with (
        pytest.raises(Refused, match="west: nothing to roll back to"),
        staged(runtime(provider, 5.0, stage="rollback")) as rt,
    ):
        rollback(rt, request)
    assert provider.changes() == []


@pytest.mark.parametrize("stage", [promote, abort])
def test_a_promote_or_abort_refused_in_one_region_changes_no_other(stage: Stage) -> None:
    store = Store()
    seed(store, "web-prod-v000", 4, region="east")
    seed(store, "web-prod-v000", 4, region="west")
    request = Request(
        Cluster("web", "prod"), "web:2", regions=("east",), strategy="canary", canary_instances=1
    )
    with staged(runtime(MemoryProvider(store=store), stage="deploy")) as rt:
        deploy(rt, request)
    provider = MemoryProvider(store=store)
    with (
        pytest.raises(Refused, match="no canary in web-prod in west"),
        staged(runtime(provider, 5.0, stage=stage.__name__)) as rt,
    ):
        stage(rt, CanaryRequest("web-prod", regions=("east", "west")))
    assert provider.changes() == []


def test_disable_cluster_stopped_by_one_region_changes_no_other() -> None:
    """A cluster missing from the second region stops the stage before the first is
    changed."""
    store = Store()
    for n in range(2):
        seed(store, f"web-prod-v00{n}", 2, region="east")
    provider = MemoryProvider(store=store)
    request = ClusterRequest("disable", "web-prod", regions=("east", "west"))
    with (
        pytest.raises(NotFound, match="no server group in west"),
        staged(runtime(provider, 5.0, stage="disable-cluster")) as rt,
    ):
        cluster_stage(rt, request)
    assert provider.changes() == []


# --- clone, killed and run again ----------------------------------------------------------


def cloned(
    store: Store,
    selector: Selector,
    strategy: str,
    kill: tuple[int, str] | None = None,
    run_key: str = "run-1",
) -> MemoryProvider:
    request = CloneRequest(selector, Request(Cluster("clone"), "", strategy=strategy))
    provider = MemoryProvider(store=store)
    rt = runtime(provider, 5.0, stage="clone", run_key=run_key)
    if kill is None:
        with staged(rt):
            clone(rt, request)
        return provider
    provider.kill(kill[0], *CHANGES, after=kill[1] == "after")
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(lease, "TTL", 0.0)
        clone(rt, request)
    return provider


def a_deployed_cluster() -> Store:
    """web-prod-v000 serving 3, made by a deploy (its spec recorded)."""
    store = Store()
    with staged(runtime(MemoryProvider(store=store), stage="deploy")) as rt:
        deploy(rt, Request(Cluster("web", "prod"), "web:1", instances=3))
    return store


@pytest.mark.parametrize(
    ("selector", "strategy", "after"),
    [
        (
            Selector(REGION, cluster="web-prod", target="newest"),
            "rolling-red-black",
            {"web-prod-v000": (False, 0), "web-prod-v001": (True, 3)},
        ),
        (
            Selector(REGION, server_group="web-prod-v000"),
            "highlander",
            {"web-prod-v001": (True, 3)},
        ),
    ],
    ids=["newest-rolling", "source-destroyed-by-highlander"],
)
def test_a_clone_killed_and_run_again_carries_on_from_what_it_was_made_from(
    selector: Selector, strategy: str, after: dict[str, tuple[bool, int]]
) -> None:
    """Killed at each of its changes, before and after it, then run again with its run key
    (and a retry of the finished run): the rerun never clones the clone itself (`--target
    newest` is that now), nor needs a source its strategy destroyed."""
    store = a_deployed_cluster()
    count = len(cloned(store, selector, strategy).changes())
    assert settled(store) == after
    cloned(store, selector, strategy)
    assert settled(store) == after, "a retry of the finished run"
    for nth in range(1, count + 1):
        for when in ("before", "after"):
            store = a_deployed_cluster()
            cloned(store, selector, strategy, kill=(nth, when))
            cloned(store, selector, strategy)
            assert settled(store) == after, (nth, when)


@pytest.mark.parametrize("kill", [(2, "after"), None], ids=["killed-after-destroying", "finished"])
def test_an_abort_destroy_that_destroyed_its_canary_is_found_done_by_its_retry(
    kill: tuple[int, str] | None,
) -> None:
    """Nothing is left of the canary to say so: the journal beside the lease does."""
    store = a_canary()
    if kill is None:
        run(store, abort, "job-1", destroy=True)
    else:
        killed(store, abort, *kill, "job-1", destroy=True)
    assert settled(store) == {"web-prod-v000": (True, 4)}
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, 5.0, stage="abort", run_key="job-1")) as rt:
        result = abort(rt, CanaryRequest("web-prod", destroy=True))
    assert result["server_group"] == "web-prod-v001" and result["destroyed"] is True
    assert provider.changes() == []
    with pytest.raises(Refused, match="no canary"):
        run(store, abort, "job-2", destroy=True)


def test_another_runs_clone_of_a_half_grown_group_takes_its_whole_size() -> None:
    """The newest group half grown by a killed rolling clone counts at the size its run
    decided, not at the instances it has so far."""
    newest = Selector(REGION, cluster="web-prod", target="newest")
    store = a_deployed_cluster()
    cloned(store, newest, "rolling-red-black", kill=(2, "after"))
    cloned(store, newest, "red-black", run_key="run-2")
    serving = {name: size for name, (on, size) in settled(store).items() if on}
    assert serving == {"web-prod-v002": 3}


def test_a_bug_in_a_later_region_keeps_what_the_earlier_regions_did() -> None:
    """Not a TreadleError: still a failure whose result names the region already rolled
    back (the runner makes it Unexpected, exit 1)."""
    from treadle.errors import Unexpected

    store = Store()
    for region in ("east", "west"):
        seed(store, "web-prod-v000", 0, region=region, enabled=False, capacity=2)
        seed(store, "web-prod-v001", 2, region=region)
    provider = MemoryProvider(store=store)
    provider.fail(2, "enable", error=RuntimeError("no one foresaw this"))
    request = RollbackRequest("web-prod", regions=("east", "west"))
    with (
        pytest.raises(Unexpected, match="no one foresaw this") as raised,
        staged(runtime(provider, 5.0, stage="rollback")) as rt,
    ):
        rollback(rt, request)
    regions = raised.value.fields["regions"]
    assert isinstance(regions, list)
    assert [r["region"] for r in regions] == ["east", "west"]
    assert regions[0]["server_group"] == "web-prod-v000"
