"""Concurrent pipelines and killed jobs on a real Docker engine, with real treadle
processes: findings 1 and 12 of the safety issue, held to tests/scenarios.py's
invariants."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import EngineImages, engine
from scenarios import (
    CLUSTER,
    ONCE_CREATED,
    SIZE,
    Attempt,
    KillPoint,
    World,
    concurrent,
    kill_and_rerun,
)

from treadle.providers.docker.containers import LABEL_INSTANCE
from treadle.providers.engine.spec import LABEL_REGION, LABEL_SERVER_GROUP

OLD, NEW = f"{CLUSTER}-v000", f"{CLUSTER}-v001"


@pytest.fixture(scope="module")
def images(engine: Any) -> Iterator[EngineImages]:
    made = EngineImages(engine)
    yield made
    made.remove()


def engine_backend(api: Any, images: EngineImages) -> Any:
    return engine("docker", api, images)


@pytest.fixture
def world(engine: Any, images: EngineImages, tmp_path: Path) -> Iterator[World]:
    with engine_backend(engine, images) as backend, World(backend, tmp_path) as w:
        yield w


def no_violations(world: World) -> None:
    found = world.violations()
    assert not found, "\n".join(found)


# The other strategies: benchmarks/reliability.py's table.
@pytest.mark.parametrize("strategy", ["red-black", "rolling-red-black"])
def test_three_deploys_at_once_each_end_with_a_group_that_runs_their_image(
    world: World, strategy: str
) -> None:
    """Finding 1 on the engine: no job exits 0 naming a group that runs no container."""
    attempts = concurrent(world, strategy, 3, run_keys=[True, False, True])
    assert [a.code for a in attempts] == [0] * 3, [a.stderr for a in attempts]
    assert len({a.result["server_group"] for a in attempts if a.result}) == 3
    no_violations(world)


def test_red_black_killed_while_its_group_has_3_of_4_then_rerun_runs_4(
    engine: Any, world: World
) -> None:
    third = engine_event(engine, world.backend.region, NEW, "start", count=3)
    first, rerun = kill_and_rerun(world, "red-black", KillPoint("3 of 4 started", wait=third))
    assert first.killed and first.end is not None
    assert first.end.health[NEW].running == 3
    assert rerun.code == 0, rerun.stderr
    assert rerun.result and rerun.result["server_group"] == NEW
    assert world.final is not None and world.final.health[NEW].running == SIZE
    no_violations(world)


def test_rolling_killed_right_after_creating_its_group_keeps_the_capacity(world: World) -> None:
    first, rerun = kill_and_rerun(world, "rolling-red-black", ONCE_CREATED)
    assert first.killed and rerun.code == 0, rerun.stderr
    assert rerun.result and rerun.result["instances"] == SIZE
    no_violations(world)


def test_a_kill_while_disabling_is_finished_and_told_by_the_rerun(
    engine: Any, world: World
) -> None:
    """Killed as the first instance of the old group is being stopped (labelled
    disabled, the others still running): the rerun stops them, and says it disabled it."""
    region = world.backend.region
    point = KillPoint("while disabling", wait=engine_event(engine, region, OLD, "kill"))
    first, rerun = kill_and_rerun(world, "red-black", point)
    assert first.killed and first.end is not None
    left = first.end.groups[OLD]
    assert not left.enabled and first.end.health[OLD].running, "the kill should cut the disable"
    assert rerun.code == 0, rerun.stderr
    assert rerun.result and rerun.result["disabled_server_groups"] == [OLD]
    assert world.final is not None and world.final.health[OLD].running == 0
    no_violations(world)


def engine_event(
    api: Any, region: str, group: str, event: str, count: int = 1
) -> Callable[[Attempt], bool]:
    """A kill point: the engine's `count`th `event` (create, start, kill, ...) of an
    instance of `group`, seen as it happens."""

    def wait(attempt: Attempt) -> bool:
        labels = [f"{LABEL_REGION}={region}", f"{LABEL_SERVER_GROUP}={group}", LABEL_INSTANCE]
        filters = {"type": "container", "event": event, "label": labels}
        events = api.events(filters=filters, until=int(time.time()) + 60, decode=True)
        return sum(1 for _ in itertools.islice(events, count)) == count

    return wait


def test_a_rerun_starts_the_instances_its_first_attempt_created_but_did_not_start(
    engine: Any, images: EngineImages, tmp_path: Path
) -> None:
    """The kill lands between creating an instance and starting it: a few tries, as the
    window is one request wide."""
    for n in range(5):
        folder = tmp_path / str(n)
        folder.mkdir()
        with engine_backend(engine, images) as backend, World(backend, folder) as world:
            # Its start is a request of its own, after the create.
            created = engine_event(engine, backend.region, NEW, "create")
            point = KillPoint("an instance created, not started", wait=created)
            first, rerun = kill_and_rerun(world, "red-black", point)
            assert rerun.code == 0, rerun.stderr
            assert world.final is not None and world.final.health[NEW].running == SIZE
            no_violations(world)
            assert first.end is not None
            left = first.end.groups.get(NEW)
            if first.killed and left and first.end.health[NEW].running < left.instances:
                return
    pytest.fail("no kill landed between creating an instance and starting it in 5 tries")
