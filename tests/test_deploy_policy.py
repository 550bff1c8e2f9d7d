"""deploy's policy (treadle.stages.deploy) on the in-memory provider: adoption of an
earlier attempt's group, taken names, and for every strategy a kill or a provider error
at every step, followed by a rerun or a rollback, held to the safety rules:

- every deploy that succeeds names a server group that runs its image;
- after a rerun the cluster serves what it served before (a replacing strategy);
- recorded capacity survives: no older group's record is lost or shrunk;
- no group newer than the deploy's own is touched;
- a rollback brings every older group that served back at its recorded size, enabled,
  the step in progress included, and takes the new group out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from memory import (
    CHANGES,
    Killed,
    MemoryProvider,
    Store,
    groups_of,
    log,
    runtime,
    seed,
    staged,
)

from treadle.errors import AlreadyExists, ProviderError, StageFailed, Timeout
from treadle.naming import Cluster
from treadle.providers.base import LABEL_RUN_KEY, LABEL_SPEC_DIGEST
from treadle.stages import lease
from treadle.stages.deploy import deploy
from treadle.stages.deploy_plan import Request
from treadle.stages.records import capacity
from treadle.stages.selection import age_key

CLUSTER = Cluster("web", "prod")
REGION = "local"
OLD, NEW = "web:1", "web:2"


pytestmark = pytest.mark.usefixtures("fast_leases")


def request(image: str = NEW, **kw: object) -> Request:
    return Request(CLUSTER, image, **kw)  # type: ignore[arg-type]


def run(
    store: Store,
    req: Request,
    *,
    run_key: str | None = None,
    provider: MemoryProvider | None = None,
    seconds: float = 1.0,
) -> tuple[dict[str, object], MemoryProvider]:
    """A deploy as the stage runner runs it (its lease released at the end)."""
    provider = provider or MemoryProvider(store=store)
    with staged(runtime(provider, seconds, run_key=run_key, stage="deploy")) as rt:
        return deploy(rt, req), provider


# Every call a stage makes from its own threads (the lease's renewer calls at its own
# pace, so it is left out of the count).
STAGE_CALLS = (
    "check_region",
    "definition",
    "server_groups",
    "server_group",
    "health",
    "lease",
    "create_lease",
    "delete_lease",
    *CHANGES,
)


def killed(
    store: Store,
    req: Request,
    nth: int,
    when: str,
    run_key: str,
    calls: tuple[str, ...] = CHANGES,
) -> MemoryProvider:
    """A deploy whose process dies at its nth change, or nth of `calls` (before or after
    it is carried out): nothing after that runs, and its lease is left behind, expired
    already (as if the rerun came TTL later)."""
    provider = MemoryProvider(store=store)
    provider.kill(nth, *calls, after=when == "after")
    with pytest.MonkeyPatch.context() as patch, pytest.raises(Killed):
        patch.setattr(lease, "TTL", 0.0)
        deploy(runtime(provider, run_key=run_key, stage="deploy"), req)
    return provider


def serving(store: Store) -> int:
    return sum(g.instances for g in store.all(REGION) if g.serving)


# --- the strategies' scenarios --------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    id: str
    options: dict[str, object]
    # The cluster before: name -> (instances, enabled); a disabled one remembers 2.
    cluster: dict[str, tuple[int, bool]]
    # The changes of a deploy that nothing interrupts, and the cluster after it.
    changes: list[tuple[str, str]]
    after: dict[str, tuple[bool, int]]
    replaces: bool = True
    new: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "new", self.changes[0][1])

    def seed(self, store: Store) -> None:
        for name, (instances, enabled) in self.cluster.items():
            seed(store, name, instances, image=OLD, enabled=enabled, capacity=instances or 2)


SCENARIOS = [
    Scenario(
        "none",
        {"strategy": "none"},
        {"web-prod-v000": (2, True)},
        [("create", "web-prod-v001")],
        {"web-prod-v000": (True, 2), "web-prod-v001": (True, 2)},
        replaces=False,
    ),
    Scenario(
        "highlander",
        {"strategy": "highlander"},
        {"web-prod-v000": (0, False), "web-prod-v001": (2, True)},
        [("create", "web-prod-v002"), ("destroy", "web-prod-v000"), ("destroy", "web-prod-v001")],
        {"web-prod-v002": (True, 2)},
    ),
    Scenario(
        "red-black",
        {"strategy": "red-black"},
        {"web-prod-v000": (0, False), "web-prod-v001": (2, True)},
        [("create", "web-prod-v002"), ("disable", "web-prod-v001")],
        {"web-prod-v000": (False, 0), "web-prod-v001": (False, 0), "web-prod-v002": (True, 2)},
    ),
    Scenario(
        "red-black-max-remaining-1",
        {"strategy": "red-black", "max_remaining": 1},
        {"web-prod-v000": (0, False), "web-prod-v001": (0, False), "web-prod-v002": (3, True)},
        [
            ("create", "web-prod-v003"),
            ("disable", "web-prod-v002"),
            ("destroy", "web-prod-v000"),
            ("destroy", "web-prod-v001"),
        ],
        {"web-prod-v002": (False, 0), "web-prod-v003": (True, 3)},
    ),
    Scenario(
        "rolling",
        {"strategy": "rolling-red-black"},
        {"web-prod-v000": (4, True)},
        [
            ("create", "web-prod-v001"),
            ("resize", "web-prod-v001"),
            ("resize", "web-prod-v000"),
            ("resize", "web-prod-v001"),
            ("resize", "web-prod-v000"),
            ("resize", "web-prod-v001"),
            ("disable", "web-prod-v000"),
        ],
        {"web-prod-v000": (False, 0), "web-prod-v001": (True, 4)},
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_an_uninterrupted_deploy(scenario: Scenario) -> None:
    store = Store()
    scenario.seed(store)
    result, provider = run(store, request(**scenario.options))
    assert provider.changes() == scenario.changes
    assert groups_of(store, REGION, "web-prod") == scenario.after
    assert result["server_group"] == scenario.new and result["image"] == NEW


def short(target: object) -> str:
    """v001 for web-prod-v001, the region or lease cluster otherwise."""
    if isinstance(target, str):
        return target.rsplit("-", 1)[-1]
    return str(getattr(target, "cluster", target))


def kill_points() -> Iterator[object]:
    """Before and after every change of every strategy."""
    for s in SCENARIOS:
        for i, (method, target) in enumerate(s.changes, 1):
            for when in ("before", "after"):
                yield pytest.param(
                    s, CHANGES, i, when, id=f"{s.id}-{when}-change-{i}-{method}-{short(target)}"
                )


def calls_of_an_uninterrupted_deploy(scenario: Scenario) -> list[tuple[str, object]]:
    store = Store()
    scenario.seed(store)
    provider = MemoryProvider(store=store)
    with staged(runtime(provider, run_key="run-1")) as rt:
        deploy(rt, request(**scenario.options))
        # Up to the release, which a killed run never reaches.
        return [(c.method, c.target) for c in provider.called(*STAGE_CALLS)]


def kill_at_every_call() -> Iterator[object]:
    """Before every call, reads and the lease's included, of the strategies that change
    the most."""
    for s in SCENARIOS:
        if s.id not in ("red-black", "rolling"):
            continue
        for i, (method, target) in enumerate(calls_of_an_uninterrupted_deploy(s), 1):
            yield pytest.param(
                s, STAGE_CALLS, i, "before", id=f"{s.id}-before-call-{i}-{method}-{short(target)}"
            )


@pytest.mark.parametrize("same_run", [True, False], ids=["same-run-key", "another-run"])
@pytest.mark.parametrize(
    ("scenario", "calls", "nth", "when"), [*kill_points(), *kill_at_every_call()]
)
def test_a_rerun_after_a_kill_at_every_step(
    scenario: Scenario, calls: tuple[str, ...], nth: int, when: str, same_run: bool
) -> None:
    store = Store()
    scenario.seed(store)
    req = request(**scenario.options)
    before = {g.name: g for g in store.all(REGION)}
    served = serving(store)
    killed(store, req, nth, when, "run-1", calls)
    made_by_first = store.view(REGION, scenario.new)
    half_done = {g.name: g for g in store.all(REGION)}

    result, rerun = run(store, req, run_key="run-1" if same_run else "run-2")

    # Every deploy that succeeds names a server group that runs its image.
    own = store.view(REGION, str(result["server_group"]))
    assert own is not None and own.image == NEW and own.serving
    assert own.instances == result["instances"]
    if same_run and made_by_first is not None:
        assert own.name == scenario.new, "the first attempt's group is carried on"
        assert [g.name for g in store.all(REGION) if g.image == NEW] == [own.name]
        assert groups_of(store, REGION, "web-prod") == scenario.after
    # The cluster serves what it served before (a replacing strategy), or that and the
    # new group (none; another run does not know of the dead one's group).
    if scenario.replaces:
        assert serving(store) == served
    elif same_run:
        assert serving(store) == served + own.instances
    # No older group's recorded capacity is lost or shrunk.
    for name, was in before.items():
        now = store.view(REGION, name)
        if now is not None:
            assert capacity(now) == capacity(was), name
    # No group newer than the deploy's own is touched.
    for method, target in rerun.changes():
        if target != own.name:
            assert age_key(half_done[str(target)]) < age_key(own), (method, target)


def test_a_rerun_after_a_kill_in_the_middle_of_a_rolling_deploy_says_what_is_true() -> None:
    scenario = next(s for s in SCENARIOS if s.id == "rolling")
    store = Store()
    scenario.seed(store)
    req = request(**scenario.options)
    killed(store, req, 5, "after", "run-1")  # the old group shrunk to 2 of 4
    assert groups_of(store, REGION, "web-prod") == {
        "web-prod-v000": (True, 2),
        "web-prod-v001": (True, 2),
    }
    result, rerun = run(store, req, run_key="run-1")
    assert rerun.changes() == [
        ("resize", "web-prod-v001"),  # carried on at the step it reached
        ("resize", "web-prod-v001"),
        ("disable", "web-prod-v000"),
    ]
    assert rerun.called("resize")[0].args[1] == 2
    assert {k: result[k] for k in ("server_group", "instances", "previous_server_group")} == {
        "server_group": "web-prod-v001",
        "instances": 4,
        "previous_server_group": "web-prod-v000",
    }
    assert result["disabled_server_groups"] == ["web-prod-v000"]
    assert capacity(store.view(REGION, "web-prod-v000")) == 4  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("scenario", "nth", "expected"),
    [
        pytest.param(SCENARIOS[2], 2, ["web-prod-v001"], id="red-black-disabled-by-the-first"),
        pytest.param(SCENARIOS[2], 1, ["web-prod-v001"], id="red-black-disabled-by-the-rerun"),
        pytest.param(SCENARIOS[4], 7, ["web-prod-v000"], id="rolling-disabled-by-the-first"),
    ],
)
def test_an_adopted_reruns_result_names_every_group_its_run_disabled(
    scenario: Scenario, nth: int, expected: list[str]
) -> None:
    store = Store()
    scenario.seed(store)
    req = request(**scenario.options)
    killed(store, req, nth, "after", "run-1")
    result, _ = run(store, req, run_key="run-1")
    assert result["server_group"] == scenario.new
    assert result["disabled_server_groups"] == expected
    assert result["previous_server_group"] == next(
        n for n, (_, enabled) in reversed(scenario.cluster.items()) if enabled
    )
    assert result["instances"] == scenario.after[scenario.new][1]


# --- rollback from every step ---------------------------------------------------------


def fault_points() -> Iterator[object]:
    for s in SCENARIOS:
        for i, (method, target) in enumerate(s.changes, 1):
            for when in ("before", "after"):
                yield pytest.param(
                    s, i, when, id=f"{s.id}-{when}-{i}-{method}-{target.rsplit('-', 1)[1]}"
                )


@pytest.mark.parametrize(("scenario", "nth", "when"), list(fault_points()))
def test_a_rollback_from_every_step(scenario: Scenario, nth: int, when: str) -> None:
    store = Store()
    scenario.seed(store)
    before = {g.name: g for g in store.all(REGION)}
    provider = MemoryProvider(store=store)
    provider.fail(nth, *CHANGES, after=when == "after")
    with pytest.raises((StageFailed, ProviderError)) as failed:
        run(store, request(**scenario.options, rollback_on_failure=True), provider=provider)
    destroyed = []
    for name, was in before.items():
        now = store.view(REGION, name)
        if now is None:
            destroyed.append(name)
        elif was.serving:
            assert (now.enabled, now.instances) == (True, capacity(was)), name
        else:
            assert (now.enabled, now.instances) == (was.enabled, was.instances), name
    new = store.view(REGION, scenario.new)
    if any(before[name].serving for name in destroyed):
        # What served is gone for good: the new group is all there is to serve, and the
        # result says the rollback could not undo everything.
        assert new is not None and new.serving, "the rollback left nothing serving"
        assert failed.value.fields.get("rolled_back") is False
    else:
        assert new is None or not new.serving, "the new group is taken out"
        if new is not None:
            assert failed.value.fields.get("rolled_back") is True


def rerun_fault_points() -> Iterator[object]:
    # (scenario, the change the first attempt was killed after, the rerun's changes)
    for scenario, killed_after, changes in (
        (SCENARIOS[2], 2, ["resize-v002"]),
        (SCENARIOS[4], 5, ["resize-v001", "resize-v001", "disable-v000"]),
        (SCENARIOS[4], 3, ["resize-v001", "resize-v001", "resize-v000", "resize-v001"]),
    ):
        for i, change in enumerate(changes, 1):
            for when in ("before", "after"):
                yield pytest.param(
                    scenario,
                    killed_after,
                    i,
                    when,
                    id=f"{scenario.id}-killed-after-{killed_after}-then-{when}-{i}-{change}",
                )


@pytest.mark.parametrize(("scenario", "killed_after", "nth", "when"), list(rerun_fault_points()))
def test_a_rollback_on_an_adopted_rerun_restores_what_the_first_attempt_touched(
    scenario: Scenario, killed_after: int, nth: int, when: str
) -> None:
    store = Store()
    scenario.seed(store)
    before = {g.name: g for g in store.all(REGION)}
    killed(store, request(**scenario.options), killed_after, "after", "run-1")
    provider = MemoryProvider(store=store)
    provider.fail(nth, *CHANGES, after=when == "after")
    req = request(**scenario.options, rollback_on_failure=True)
    with pytest.raises((StageFailed, ProviderError)) as failed:
        run(store, req, run_key="run-1", provider=provider)
    assert failed.value.fields.get("rolled_back") is True
    for name, was in before.items():
        now = store.view(REGION, name)
        assert now is not None
        assert (now.enabled, now.instances) == (was.enabled, capacity(was) if was.serving else 0)
    new = store.view(REGION, scenario.new)
    assert new is not None and not new.serving


@pytest.mark.parametrize(
    ("script", "error"),
    [
        pytest.param("never_healthy", Timeout, id="not-healthy-in-time"),
        pytest.param("crashing", StageFailed, id="instances-keep-failing"),
    ],
)
@pytest.mark.parametrize("destroy_failed", [False, True], ids=["disable", "destroy-failed"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.id)
def test_a_rollback_when_the_new_group_never_becomes_healthy(
    scenario: Scenario, script: str, error: type[Exception], destroy_failed: bool
) -> None:
    store = Store()
    scenario.seed(store)
    getattr(store, script)(NEW)
    before = groups_of(store, REGION, "web-prod")
    req = request(**scenario.options, rollback_on_failure=True, destroy_failed=destroy_failed)
    with pytest.raises(StageFailed) as failed:
        run(store, req, seconds=0.05)
    assert failed.value.fields["rolled_back"] is True
    assert failed.value.fields["server_group"] == scenario.new
    assert "rolled back" in str(failed.value)
    after = groups_of(store, REGION, "web-prod")
    assert {k: v for k, v in after.items() if k != scenario.new} == before
    assert after.get(scenario.new) == (None if destroy_failed else (False, 0))
    assert isinstance(failed.value.__cause__, error)


def test_a_rerun_after_a_rollback_deploys_afresh() -> None:
    store = Store()
    seed(store, "web-prod-v000", 2)
    store.never_healthy(NEW)
    req = request(strategy="red-black", rollback_on_failure=True)
    with pytest.raises(StageFailed):
        run(store, req, run_key="run-1", seconds=0.05)
    store.images.clear()
    result, provider = run(store, req, run_key="run-1")
    assert result["server_group"] == "web-prod-v002"
    assert groups_of(store, REGION, "web-prod") == {
        "web-prod-v000": (False, 0),
        "web-prod-v001": (False, 0),
        "web-prod-v002": (True, 2),
    }


# --- adoption: only run key, image and spec digest matching, on the newest group --------

DIGEST = request().digest


def earlier(**labels: str) -> dict[str, str]:
    return {LABEL_RUN_KEY: "run-1", LABEL_SPEC_DIGEST: DIGEST, **labels}


ADOPTION = [
    # (the cluster: name, image, enabled, labels), the rerun's run key, spec, adopted
    (
        [("web-prod-v001", NEW, True, earlier())],
        "run-1",
        None,
        True,
        "all-match",
    ),
    ([("web-prod-v001", NEW, True, earlier())], "run-2", None, False, "another-run-key"),
    ([("web-prod-v001", NEW, True, earlier())], None, None, False, "no-run-key"),
    ([("web-prod-v001", OLD, True, earlier())], "run-1", None, False, "another-image"),
    (
        [("web-prod-v001", NEW, True, earlier())],
        "run-1",
        {"env": {"A": "1"}},
        False,
        "another-spec",
    ),
    (
        [("web-prod-v001", NEW, True, {LABEL_SPEC_DIGEST: DIGEST})],
        "run-1",
        None,
        False,
        "group-without-run-key",
    ),
    (
        [("web-prod-v001", NEW, False, earlier())],
        "run-1",
        None,
        False,
        "rolled-back-is-disabled",
    ),
    (
        [("web-prod-v001", NEW, True, earlier()), ("web-prod-v002", OLD, True, {})],
        "run-1",
        None,
        False,
        "not-the-newest",
    ),
]


@pytest.mark.parametrize(
    ("cluster", "run_key", "spec", "adopted"),
    [pytest.param(*row[:-1], id=row[-1]) for row in ADOPTION],
)
def test_adoption(cluster, run_key, spec, adopted) -> None:
    store = Store()
    seed(store, "web-prod-v000", 2, image=OLD)
    for name, image, enabled, labels in cluster:
        seed(store, name, 2, image=image, enabled=enabled, labels=labels)
    newest = cluster[-1][0]
    result, provider = run(store, request(spec=spec), run_key=run_key)
    if adopted:
        assert result["server_group"] == newest
        assert provider.called("create") == []
    else:
        assert [c.target for c in provider.called("create")] == [result["server_group"]]
        assert str(result["server_group"]) > newest


# --- a name somebody else took ----------------------------------------------------------


def take_name(store: Store, name: str, run_key: str) -> None:
    seed(store, name, 1, image=NEW, labels={LABEL_RUN_KEY: run_key, LABEL_SPEC_DIGEST: DIGEST})


@pytest.mark.parametrize(
    "run_key", ["run-1", "run-2"], ids=["taken-by-the-same-run-key", "taken-by-another-run"]
)
def test_a_taken_name_moves_on_to_the_next_sequence(run_key: str) -> None:
    store = Store()
    seed(store, "web-prod-v000", 2, image=OLD)
    provider = MemoryProvider(store=store)
    provider.before(1, "create", action=lambda: take_name(store, "web-prod-v001", run_key))
    with staged(runtime(provider, run_key="run-1")) as rt:
        result = deploy(rt, request(strategy="red-black"))
    assert result["server_group"] == "web-prod-v002"
    assert [c.target for c in provider.called("create")] == ["web-prod-v001", "web-prod-v002"]
    # The one that took the name is newer than the cluster the deploy planned: untouched.
    assert groups_of(store, REGION, "web-prod") == {
        "web-prod-v000": (False, 0),
        "web-prod-v001": (True, 1),
        "web-prod-v002": (True, 2),
    }
    assert "web-prod-v001 exists already and is not this run's" in log(rt)


def test_names_taken_again_and_again_fail_the_stage() -> None:
    store = Store()
    provider = MemoryProvider(store=store)
    for n in range(1, 6):
        provider.before(
            n,
            "create",
            action=lambda n=n: take_name(store, f"web-prod-v{n - 1:03d}", "run-2"),
        )
    with pytest.raises(StageFailed, match="5 names of web-prod in local in a row were taken"):
        run(store, request(), provider=provider)


def test_its_own_create_answered_as_taken_is_not_a_second_group() -> None:
    store = Store()
    seed(store, "web-prod-v000", 2, image=OLD)
    provider = MemoryProvider(store=store)
    provider.fail(1, "create", error=AlreadyExists("web-prod-v001 exists"), after=True)
    result, _ = run(store, request(strategy="red-black"), run_key="run-1", provider=provider)
    assert [g.name for g in store.all(REGION) if g.serving] == [result["server_group"]]


def test_a_dry_run_changes_nothing_and_takes_no_lease() -> None:
    store = Store()
    seed(store, "web-prod-v000", 2, image=OLD)
    provider = MemoryProvider(store=store)
    rt = runtime(provider, dry_run=True)
    with staged(rt):
        result = deploy(rt, request(strategy="red-black"))
    assert result["server_group"] == "web-prod-v001"
    assert rt.planned == [
        "create web-prod-v001 in local with 2 instances",
        "disable web-prod-v000 in local",
    ]
    assert provider.called(*CHANGES, "create_lease") == [] and not rt.changed
    assert "dry run" in log(rt)
