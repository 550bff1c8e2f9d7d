"""Concurrent pipelines and killed jobs on a real Swarm, with real treadle processes:
findings 1 and 12 of the safety issue, held to tests/scenarios.py's invariants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from backends import EngineImages, engine
from scenarios import (
    CLUSTER,
    SIZE,
    WHILE_DISABLING,
    KillPoint,
    World,
    concurrent,
    kill_and_rerun,
)

from treadle.providers.base import LABEL_DISABLED_INSTANCES

OLD, NEW = f"{CLUSTER}-v000", f"{CLUSTER}-v001"


@pytest.fixture(scope="module")
def images(swarm: Any) -> Iterator[EngineImages]:
    made = EngineImages(swarm)
    yield made
    made.remove()


@pytest.fixture
def world(swarm: Any, images: EngineImages, tmp_path: Path) -> Iterator[World]:
    with engine("swarm", swarm, images) as backend, World(backend, tmp_path) as w:
        yield w


def no_violations(world: World) -> None:
    found = world.violations()
    assert not found, "\n".join(found)


def test_three_deploys_at_once_each_name_the_group_they_made(world: World) -> None:
    """No create conflict puts another job's group in a loser's result."""
    attempts = concurrent(world, "highlander", 3, run_keys=[True, False, True])
    assert [a.code for a in attempts] == [0] * 3, [a.stderr for a in attempts]
    assert len({a.result["server_group"] for a in attempts if a.result}) == 3
    no_violations(world)


def test_rolling_killed_after_the_25_percent_step_and_rerun_remembers_4(world: World) -> None:
    # Steps 25,100: after the 25% step the next is the last.
    after_first = KillPoint("after the 25% step", line=r"^resize \S+ to 4 \(")
    first, rerun = kill_and_rerun(
        world, "rolling-red-black", after_first, args=["--steps", "25,100"]
    )
    assert first.killed and first.end is not None
    assert first.end.groups[OLD].instances == 3, "the kill should land after the 25% step"
    assert rerun.code == 0, rerun.stderr
    assert world.final is not None
    assert world.final.groups[OLD].labels[LABEL_DISABLED_INSTANCES] == str(SIZE)
    assert world.final.health[NEW].running == SIZE
    no_violations(world)


def test_a_kill_while_disabling_is_finished_and_told_by_the_rerun(world: World) -> None:
    first, rerun = kill_and_rerun(
        world, "red-black", KillPoint("while disabling", line=WHILE_DISABLING.line, delay=0.5)
    )
    assert first.killed and first.end is not None
    # One service update disables it on Swarm: the kill comes once it is made.
    assert not first.end.groups[OLD].enabled, "the kill should come after the disable"
    assert rerun.code == 0, rerun.stderr
    assert rerun.result and rerun.result["disabled_server_groups"] == [OLD]
    assert world.final is not None and world.final.health[OLD].running == 0
    no_violations(world)
