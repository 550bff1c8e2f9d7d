"""The cluster lease's rules (treadle.stages.lease) on the in-memory provider: what it
costs uncontended, waiting for another run's, taking over a dead holder's exactly once,
a rerun's own, a lease lost to another run, and release on every exit path. TTLs are
made short rather than waited out."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from memory import CHANGES, LEASE_CALLS, MemoryProvider, Store, log, runtime, seed, staged

from treadle.errors import LeaseHeld, LeaseLost
from treadle.naming import Cluster
from treadle.providers.base import LABEL_RUN_KEY, LABEL_RUN_URL, Lease, LeaseKey
from treadle.stages import lease
from treadle.stages.deploy import deploy
from treadle.stages.deploy_plan import Request
from treadle.stages.destroy import destroy
from treadle.stages.enable_disable import disable, enable
from treadle.stages.resize import Size, resize
from treadle.stages.selection import Selector
from treadle.waiting import CANCELLED

REGION, CLUSTER = "local", "web-prod"
KEY = LeaseKey(REGION, CLUSTER)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(lease, "LOOK_FIRST", 0.005)
    monkeypatch.setattr(lease, "LOOK_MAX", 0.01)
    CANCELLED.clear()
    yield
    CANCELLED.clear()


def expired_by(seconds: float) -> str:
    return lease.timestamp(lease.now() - timedelta(seconds=seconds))


def record(store: Store, lease_id: str, expires: str, **labels: str) -> Lease:
    """A lease record another run left."""
    found = store.leases[KEY] = Lease(
        KEY, lease_id, {lease.LABEL_LEASE: CLUSTER, **labels}, expires
    )
    return found


def claim_of(record: Lease) -> str:
    """The claim's name part everybody derives from that record (12 hex of its id's
    SHA-256), spelled out here as the provider contract spells it."""
    return hashlib.sha256(record.id.encode()).hexdigest()[:12]


def wait_until(check: Callable[[], bool], seconds: float = 2.0) -> None:
    end = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.002)


# --- uncontended: two calls over a whole stage ----------------------------------------


STAGES = [
    pytest.param(
        lambda rt: resize(rt, Selector(REGION, server_group="web-prod-v001"), Size(3)),
        [REGION],
        id="resize",
    ),
    pytest.param(
        lambda rt: disable(rt, Selector(REGION, server_group="web-prod-v001"), force=True),
        [REGION],
        id="disable",
    ),
    pytest.param(
        lambda rt: enable(rt, Selector(REGION, server_group="web-prod-v000")), [REGION], id="enable"
    ),
    pytest.param(
        lambda rt: destroy(rt, Selector(REGION, server_group="web-prod-v042")),
        [REGION],
        id="destroy-nothing",
    ),
    pytest.param(
        lambda rt: deploy(rt, Request(Cluster("web", "prod"), "web:2", strategy="red-black")),
        [REGION],
        id="deploy",
    ),
    pytest.param(
        lambda rt: deploy(rt, Request(Cluster("web", "prod"), "web:2", regions=("west", "east"))),
        ["east", "west"],
        id="deploy-two-regions-in-order",
    ),
]


@pytest.mark.parametrize(("stage", "regions"), STAGES)
def test_an_uncontended_lease_costs_two_calls_over_a_stage(stage, regions) -> None:
    store = Store()
    seed(store, "web-prod-v000", 0, enabled=False, capacity=2)
    seed(store, "web-prod-v001", 2)
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, stage="test")) as rt:
        stage(rt)
    calls = provider.called(*LEASE_CALLS)
    keys = [LeaseKey(r, CLUSTER) for r in regions]
    assert [(c.method, c.target) for c in calls] == [
        *[("create_lease", k) for k in keys],
        *[("delete_lease", k) for k in keys],
    ]
    assert store.leases == {}


def test_a_dry_run_takes_no_lease() -> None:
    store = Store()
    seed(store, "web-prod-v001", 2)
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, dry_run=True)) as rt:
        resize(rt, Selector(REGION, server_group="web-prod-v001"), Size(3))
    assert provider.called(*LEASE_CALLS, *CHANGES) == []


def test_the_holder_is_recorded_for_whoever_must_wait() -> None:
    store = Store()
    rt = runtime(
        MemoryProvider(store=store),
        run_key="pipeline-7",
        provenance={LABEL_RUN_URL: "https://ci.example/runs/7"},
        stage="deploy",
    )
    with staged(rt):
        rt.hold(REGION, CLUSTER)
        held = store.leases[KEY]
        assert held.labels[LABEL_RUN_KEY] == "pipeline-7"
        assert held.labels[LABEL_RUN_URL] == "https://ci.example/runs/7"
        assert held.labels[lease.LABEL_STAGE] == "deploy"
        assert not lease.expired(held)
    assert store.leases == {}


# --- another run's lease --------------------------------------------------------------


def test_a_second_holder_waits_then_is_refused_naming_the_holder() -> None:
    store = Store()
    first = runtime(
        MemoryProvider(store=store),
        run_key="pipeline-1",
        provenance={LABEL_RUN_URL: "https://ci.example/runs/1"},
        stage="deploy",
    )
    second_provider = MemoryProvider(store=store)
    second = runtime(second_provider, run_key="pipeline-2", lock_timeout=0.1, stage="resize")
    with staged(first):
        first.hold(REGION, CLUSTER)
        held = store.leases[KEY]
        started = time.monotonic()
        with staged(second), pytest.raises(LeaseHeld) as refused:
            second.hold(REGION, CLUSTER)
        assert 0.1 <= time.monotonic() - started < 1.0
        assert store.leases[KEY] == held, "the holder's record is untouched"
    error = refused.value
    assert error.exit_code == 3 and error.status == "refused"
    message = str(error)
    assert message.startswith(f"the cluster lease of {CLUSTER} in {REGION} is held by deploy run")
    for part in ("run pipeline-1", "(https://ci.example/runs/1)", " pid ", "waited 0.1s"):
        assert part in message
    assert "waiting for the cluster lease of web-prod in local" in log(second)
    assert second_provider.called("delete_lease", *CHANGES) == [] and not second.changed


def test_a_second_holder_gets_the_lease_once_released_and_its_time_starts_then() -> None:
    store = Store()
    first = runtime(MemoryProvider(store=store))
    second = runtime(MemoryProvider(store=store), seconds=1.0, lock_timeout=2.0)
    with staged(first):
        first.hold(REGION, CLUSTER)
        threading.Timer(0.1, first.exits.close).start()
        with staged(second):
            second.hold(REGION, CLUSTER)
            assert store.leases[KEY].labels[lease.LABEL_HOLDER] != ""
            # The wait was not the stage's own time.
            assert second.deadline.remaining() > 0.9
    assert store.leases == {}


# --- a dead holder's lease --------------------------------------------------------------


def test_a_dead_holders_lease_is_taken_over_exactly_once_by_racing_takers(monkeypatch) -> None:
    monkeypatch.setattr(lease, "TTL", 5.0)
    store = Store()
    dead = record(store, "dead-1", expired_by(1), **{LABEL_RUN_KEY: "pipeline-0"})
    takers = 8
    go = threading.Barrier(takers)
    holding: list[int] = []
    most = [0]
    guard = threading.Lock()
    providers = [MemoryProvider(store=store) for _ in range(takers)]
    failures: list[BaseException] = []

    def take(i: int) -> None:
        rt = runtime(providers[i], seconds=5.0, run_key=f"pipeline-{i + 1}", lock_timeout=5.0)
        go.wait()
        try:
            with staged(rt):
                rt.hold(REGION, CLUSTER)
                with guard:
                    holding.append(i)
                    most[0] = max(most[0], len(holding))
                time.sleep(0.002)
                with guard:
                    holding.remove(i)
        except BaseException as e:  # noqa: B036 - reported below, from the main thread
            failures.append(e)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(takers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert failures == []
    assert most[0] == 1, "never two holders at once"
    deleted = [c for p in providers for c in p.called("delete_lease") if c.args[0].id == dead.id]
    assert len(deleted) == 1, "the dead record is replaced exactly once"
    claims = [c for p in providers for c in p.called("create_lease") if c.target.claim is not None]
    assert claims, "taken over through a claim on that record"
    assert store.leases == {}, "every record, claims included, is gone"


def test_the_same_run_key_takes_over_at_once() -> None:
    store = Store()
    record(
        store,
        "earlier-1",
        lease.timestamp(lease.now() + timedelta(hours=1)),
        **{LABEL_RUN_KEY: "pipeline-7"},
    )
    provider = MemoryProvider(store=store)
    rt = runtime(provider, run_key="pipeline-7", lock_timeout=0.0)
    started = time.monotonic()
    with staged(rt):
        rt.hold(REGION, CLUSTER)
        assert time.monotonic() - started < 0.1
        assert store.leases[KEY].id != "earlier-1"
    assert "over (an earlier attempt of this run)" in log(rt)
    assert [c.args[0].id for c in provider.called("delete_lease")][0] == "earlier-1"


def test_another_runs_live_lease_is_not_taken_over() -> None:
    store = Store()
    held = record(
        store,
        "live-1",
        lease.timestamp(lease.now() + timedelta(hours=1)),
        **{LABEL_RUN_KEY: "pipeline-7"},
    )
    provider = MemoryProvider(store=store)
    with pytest.raises(LeaseHeld):
        runtime(provider, run_key="pipeline-8", lock_timeout=0.02).hold(REGION, CLUSTER)
    assert store.leases == {KEY: held}
    assert provider.called("delete_lease") == []


def test_a_claimer_that_died_is_cleared_and_the_lease_taken() -> None:
    store = Store()
    dead = record(store, "dead-1", expired_by(60))
    claim = LeaseKey(REGION, CLUSTER, claim=claim_of(dead))
    store.leases[claim] = Lease(claim, "claim-1", {}, expired_by(30))
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, lock_timeout=1.0)) as rt:
        rt.hold(REGION, CLUSTER)
        assert list(store.leases) == [KEY] and store.leases[KEY].id != dead.id
    assert {c.args[0].id for c in provider.called("delete_lease")} >= {"claim-1", "dead-1"}


# --- a lease lost to another run --------------------------------------------------------


def test_a_lost_lease_stops_the_stage_and_is_never_deleted_by_the_loser(monkeypatch) -> None:
    monkeypatch.setattr(lease, "TTL", 0.05)
    monkeypatch.setattr(lease, "RENEW_EVERY", 0.01)
    store = Store()
    seed(store, "web-prod-v000", 2)
    store.never_healthy("web:2")
    loser = MemoryProvider(store=store)
    stalled = loser.hang(1, "renew_lease")
    outcome: list[BaseException] = []

    def first_run() -> None:
        rt = runtime(loser, seconds=5.0, run_key="pipeline-1")
        request = Request(
            Cluster("web", "prod"), "web:2", strategy="red-black", rollback_on_failure=True
        )
        try:
            with staged(rt):
                deploy(rt, request)
        except BaseException as e:  # noqa: B036 - the outcome is asserted below
            outcome.append(e)

    thread = threading.Thread(target=first_run)
    thread.start()
    # Its renewal stalls until its record has expired and another run took over.
    assert stalled.fired.wait(2)
    first = store.leases[KEY]
    wait_until(lambda: lease.expired(first))
    winner = runtime(MemoryProvider(store=store), run_key="pipeline-2", lock_timeout=1.0)
    with staged(winner):
        winner.hold(REGION, CLUSTER)
        taken = store.leases[KEY]
        assert taken.id != first.id
        changes_before = list(loser.changes())
        stalled.hang.set()  # type: ignore[union-attr]
        thread.join(5)
        assert store.leases[KEY].id == taken.id
    [error] = outcome
    assert isinstance(error, LeaseLost) and error.exit_code == 1
    assert "lost the cluster lease of web-prod in local: another run took it over" in str(error)
    # It stopped without touching the cluster again: no rollback, no release of the
    # record that is another run's now.
    assert loser.changes() == changes_before == [("create", "web-prod-v001")]
    assert loser.called("delete_lease") == []
    assert store.view(REGION, "web-prod-v001") is not None


def test_release_after_the_record_expired_and_was_taken_deletes_nothing(monkeypatch) -> None:
    monkeypatch.setattr(lease, "TTL", 0.02)
    monkeypatch.setattr(lease, "RENEW_EVERY", 60.0)  # it never renews: a stalled holder
    store = Store()
    slow = MemoryProvider(store=store)
    stalled = runtime(slow)
    stalled.hold(REGION, CLUSTER)
    first = store.leases[KEY]
    wait_until(lambda: lease.expired(first))
    other = runtime(MemoryProvider(store=store), lock_timeout=1.0)
    with staged(other):
        other.hold(REGION, CLUSTER)
        taken = store.leases[KEY]
        stalled.exits.close()
        assert store.leases[KEY] == taken
    assert slow.called("delete_lease") == []
    assert store.leases == {}


# --- release on every exit path -----------------------------------------------------------


def test_release_after_the_deadline_passed_still_deletes_within_its_grace() -> None:
    store = Store()
    provider = MemoryProvider(store=store)
    rt = runtime(provider, seconds=0.01)
    rt.hold(REGION, CLUSTER)
    wait_until(rt.deadline.expired)
    assert rt.deadline.remaining() == 0
    rt.exits.close()
    [release] = provider.called("delete_lease")
    assert release.remaining is not None and release.remaining > lease.RELEASE_SECONDS - 1
    assert store.leases == {}


def refuse() -> None:
    raise LeaseHeld("refused")


def crash() -> None:
    raise RuntimeError("a bug")


def interrupt() -> None:
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "ending",
    [
        pytest.param(lambda: None, id="success"),
        pytest.param(refuse, id="refused"),
        pytest.param(crash, id="a-bug"),
        pytest.param(interrupt, id="interrupted"),
    ],
)
def test_release_on_every_exit_path(ending: Callable[[], None]) -> None:
    store = Store()
    provider = MemoryProvider(store=store)
    with contextlib.suppress(LeaseHeld, RuntimeError, KeyboardInterrupt):
        with staged(runtime(provider)) as rt:
            rt.hold(REGION, CLUSTER)
            ending()
    assert store.leases == {}
    assert provider.count("delete_lease") == 1
