"""Concurrent pipelines and killed jobs on Marathon (the emulator), with real treadle
processes: findings 1-5 of the safety issue. Each test ends by holding the whole run to
tests/scenarios.py's invariants (own group, untouched fresh groups, capacity, records,
no lease left, no secret)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from backends import TOKEN, MarathonBackend, marathon
from safety_table import stalled_after_create_row
from scenarios import (
    AFTER_FIRST_STEP,
    CLUSTER,
    ONCE_CREATED,
    SIZE,
    STRATEGIES,
    Attempt,
    KillPoint,
    World,
    concurrent,
    kill_and_rerun,
    rollback_in_step,
    stop_at,
)

from treadle.providers.base import LABEL_DISABLED_INSTANCES, LeaseKey
from treadle.stages.lease import TTL
from treadle.stages.records import capacity

OLD, NEW = f"{CLUSTER}-v000", f"{CLUSTER}-v001"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with marathon() as backend, World(backend, tmp_path) as w:
        yield w


@pytest.fixture
def slow_world(tmp_path: Path) -> Iterator[World]:
    """Instances take 2 s to start: time for another hand to act while a deploy waits."""
    with marathon(task_start_seconds=2) as backend, World(backend, tmp_path) as w:
        yield w


def no_violations(world: World) -> None:
    found = world.violations()
    assert not found, "\n".join(found)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_five_deploys_at_once_each_end_with_a_group_of_their_own(
    tmp_path: Path, strategy: str
) -> None:
    """Finding 1 (and 2 for highlander): five runs listing the cluster at the same
    instant queue behind the cluster lease instead of racing for one sequence. Runs 1, 3
    and 5 have run keys, 2 and 4 none."""
    with marathon(deploy_seconds=0.15) as backend, World(backend, tmp_path) as world:
        attempts = concurrent(world, strategy, 5, run_keys=[True, False, True, False, True])
        assert [a.code for a in attempts] == [0] * 5, [a.stderr for a in attempts]
        named = [a.result["server_group"] for a in attempts if a.result]
        assert len(set(named)) == 5, named
        assert any("waiting for the cluster lease" in a.stderr for a in attempts)
        assert world.final is not None
        enabled = [g for g in world.final.groups.values() if g.enabled]
        assert len(enabled) == (6 if strategy == "none" else 1), world.final.groups
        no_violations(world)


def test_a_rolling_deploy_killed_after_its_first_step_and_rerun_keeps_4(world: World) -> None:
    """Finding 3: the rerun (same run key) carries on from the records, not from the
    half-shrunk old group."""
    first, rerun = kill_and_rerun(world, "rolling-red-black", AFTER_FIRST_STEP)
    assert first.killed and first.end is not None
    assert first.end.groups[OLD].instances == 3, "the kill should land after the 25% step"
    assert rerun.code == 0, rerun.stderr
    assert "earlier attempt" in rerun.stderr
    assert rerun.result and rerun.result["server_group"] == NEW
    assert rerun.result["instances"] == SIZE
    assert world.final is not None
    old = world.final.groups[OLD]
    assert not old.enabled and old.labels[LABEL_DISABLED_INSTANCES] == str(SIZE)
    no_violations(world)


def rolling_killed_then_rerun_with_a_new_run_key(folder: Path) -> None:
    with marathon() as backend, World(backend, folder) as world:
        first, rerun = kill_and_rerun(
            world, "rolling-red-black", AFTER_FIRST_STEP, new_run_key=True
        )
        assert first.killed and rerun.code == 0, rerun.stderr
        # Another run: it waits for the dead lease, then makes a group of its own.
        assert "over (expired)" in rerun.stderr
        assert rerun.seconds < TTL + 10
        assert rerun.result and rerun.result["server_group"] == f"{CLUSTER}-v002"
        assert rerun.result["instances"] == SIZE
        assert world.final is not None
        assert all(capacity(g) == SIZE for g in world.final.groups.values())
        no_violations(world)


def killed_before_the_first_step_then_deployed_without_instances(folder: Path) -> None:
    """The new group is left enabled at 0 (its first resize never reached Marathon);
    the next pipeline's deploy, without --instances, is sized 4 from the records."""
    with marathon() as backend, World(backend, folder) as world:
        assert isinstance(backend, MarathonBackend)
        job = world.job("rolling-red-black")
        with backend.held("PUT", f"/v2/apps/{NEW}"):
            first = world.start(job)
            stop_at(world, first, KillPoint("growing", line=r"^resize \S+ to 1 \("), signal.SIGKILL)
            first.wait()
        left = world.observe().groups[NEW]
        assert left.enabled and left.instances == 0
        nxt = world.start(world.job("rolling-red-black", run_key=False))
        world.settle()
        assert nxt.code == 0, nxt.stderr
        assert nxt.result and nxt.result["instances"] == SIZE
        no_violations(world)


def test_after_a_kill_another_run_waits_out_the_dead_lease_and_sizes_from_records(
    tmp_path: Path,
) -> None:
    """Finding 3 for runs that are not the killed one's rerun. Both wait for the killed
    run's lease to expire (up to 30 s), so they run side by side."""
    cases = (
        rolling_killed_then_rerun_with_a_new_run_key,
        killed_before_the_first_step_then_deployed_without_instances,
    )
    folders = [tmp_path / case.__name__ for case in cases]
    for folder in folders:
        folder.mkdir()
    with ThreadPoolExecutor(len(cases)) as pool:
        for running in [
            pool.submit(case, folder) for case, folder in zip(cases, folders, strict=True)
        ]:
            running.result()


@pytest.mark.parametrize("how", ["timeout", "sigterm"])
def test_a_rollback_in_the_middle_of_a_rolling_step_restores_4(world: World, how: str) -> None:
    """Finding 4: the step in progress is rolled back too."""
    attempt = rollback_in_step(world, how)
    assert attempt.code == 1, attempt.stderr
    assert attempt.result and attempt.result["rolled_back"] is True
    assert world.final is not None
    old, new = world.final.groups[OLD], world.final.groups[NEW]
    assert old.enabled and world.final.health[OLD].healthy == SIZE
    assert not new.enabled
    no_violations(world)


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, Attempt]]:
    """A red-black deploy killed once its group exists, then rerun with its run key."""
    with marathon() as backend, World(backend, tmp_path_factory.mktemp("adopted")) as world:
        first, rerun = kill_and_rerun(world, "red-black", ONCE_CREATED)
        assert first.killed and rerun.code == 0, rerun.stderr
        yield world, rerun


def test_an_adopted_red_black_rerun_says_what_its_group_is(
    adopted: tuple[World, Attempt],
) -> None:
    """Finding 5: the rerun's result tells the group as it is: 4 instances, with its
    predecessor, which it disabled."""
    world, rerun = adopted
    assert rerun.result is not None
    assert {k: rerun.result[k] for k in ("server_group", "instances", "previous_server_group")} == {
        "server_group": NEW,
        "instances": SIZE,
        "previous_server_group": OLD,
    }
    assert rerun.result["disabled_server_groups"] == [OLD]
    no_violations(world)


def test_a_rerun_carrying_on_is_not_held_up_by_a_deployment_of_no_steps(
    adopted: tuple[World, Attempt],
) -> None:
    _, rerun = adopted
    assert rerun.seconds < 5, "\n".join(rerun.stderr.splitlines()[-8:])


def shrink_while_it_waits(world: World) -> Attempt:
    """A red-black deploy whose new group another hand (an operator, an autoscaler)
    shrinks to 1 while the deploy waits for it to be healthy at 4."""
    attempt = world.start(world.job("red-black"))
    assert attempt.wait_line(rf"^{NEW}: 0/{SIZE} healthy") is not None
    assert world.until(lambda s: NEW in s.groups and s.groups[NEW].instances == SIZE)
    # By hand, as an operator would: forced, since the deploy's deployment holds the app.
    answer = httpx.put(
        f"{world.backend.cli[1]}/v2/apps/{NEW}",
        params={"force": "true"},
        json={"instances": 1},
        headers={"Authorization": f"token={TOKEN}"},
    )
    answer.raise_for_status()
    world.settle()
    return attempt


def test_the_checks_catch_a_fresh_group_touched_and_a_lease_left(slow_world: World) -> None:
    """The invariants have teeth: another hand shrinks the new group while its deploy
    waits, and leaves a lease record behind."""
    world = slow_world
    shrink_while_it_waits(world)
    provider = world.backend.open()
    try:
        key = LeaseKey(world.backend.region, CLUSTER)
        assert provider.create_lease(key, {}, "2030-01-01T00:00:00.000Z") is not None
    finally:
        provider.close()
    found = world.violations()
    assert any("shrank from 4 to 1 while it ran" in v for v in found), found
    assert any("lease records left" in v for v in found), found


def test_a_deploy_whose_new_group_is_shrunk_by_another_hand_does_not_exit_0(
    slow_world: World,
) -> None:
    world = slow_world
    attempt = shrink_while_it_waits(world)
    assert attempt.code != 0 or world.final is not None and world.final.groups[OLD].enabled


def test_a_deploy_whose_cluster_stops_answering_after_create_names_its_group() -> None:
    row = stalled_after_create_row(timeout=2)
    assert row.outcome.endswith(f"names {NEW}"), row.outcome
    assert not row.violations, row.violations
