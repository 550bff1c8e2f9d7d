"""Deploy strategies as plans (treadle.stages.strategies): the steps from the cluster as
it is and its records, table by table. `others` are the cluster's older groups, newest
first, as deploy hands them over; the new group is web-prod-v009."""

from __future__ import annotations

import pytest

from treadle.providers.base import (
    LABEL_CAPACITY,
    LABEL_DISABLED_BY,
    LABEL_DISABLED_INSTANCES,
    LABEL_REPLACES,
    ServerGroup,
)
from treadle.stages.records import capacities, capacity
from treadle.stages.strategies import Step, strategy_steps, touched

NEW = "web-prod-v009"


def sg(
    sequence: int,
    instances: int,
    *,
    enabled: bool = True,
    capacity: int | None = None,
    disabled_by: str | None = None,
) -> ServerGroup:
    """web-prod-v00N: `capacity` is its recorded size (remembered, when disabled)."""
    labels: dict[str, str] = {}
    if capacity is not None:
        labels[LABEL_CAPACITY] = str(capacity)
    if not enabled:
        labels[LABEL_DISABLED_INSTANCES] = str(capacity if capacity is not None else instances)
    if disabled_by:
        labels[LABEL_DISABLED_BY] = disabled_by
    name = f"web-prod-v{sequence:03d}"
    return ServerGroup(
        name, "local", "web:1", instances, enabled, f"2026-01-01T00:00:0{sequence}Z", labels
    )


def whole(others: list[ServerGroup]) -> dict[str, int]:
    """The sizes the rows record: `capacity` where given, as a deploy's records would say
    it (treadle.stages.records.capacities), else what the group runs."""
    return {g.name: int(g.labels.get(LABEL_CAPACITY, g.instances)) for g in others}


def resize(sequence: int, instances: int) -> Step:
    return Step("resize", f"web-prod-v{sequence:03d}", instances)


def grow(instances: int) -> Step:
    return Step("resize", NEW, instances)


def disable(sequence: int) -> Step:
    return Step("disable", f"web-prod-v{sequence:03d}")


def destroy(sequence: int) -> Step:
    return Step("destroy", f"web-prod-v{sequence:03d}")


def case(*row: object, marks: object = ()) -> object:
    """A table row: strategy, target, others, options, expected steps, and its id."""
    return pytest.param(*row[:-1], id=row[-1], marks=marks)


V1_SERVING = sg(1, 2)
V0_DISABLED = sg(0, 0, enabled=False, capacity=2)

PLANS = [
    # --- none and highlander -------------------------------------------------------
    case("none", 2, [V1_SERVING, V0_DISABLED], {}, [], "none-changes-nothing"),
    case("none", 2, [], {}, [], "none-first-group"),
    case("highlander", 2, [], {}, [], "highlander-first-group"),
    case(
        "highlander",
        2,
        [V1_SERVING, V0_DISABLED],
        {},
        [destroy(0), destroy(1)],
        "highlander-destroys-all-oldest-first",
    ),
    # --- red-black ------------------------------------------------------------------
    case("red-black", 2, [], {}, [], "red-black-first-group"),
    case("red-black", 2, [V1_SERVING, V0_DISABLED], {}, [disable(1)], "red-black-disables-serving"),
    case(
        "red-black",
        2,
        [sg(2, 1), sg(1, 3), V0_DISABLED],
        {},
        [disable(2), disable(1)],
        "red-black-disables-every-serving-one",
    ),
    case(
        "red-black",
        2,
        [sg(1, 0)],
        {},
        # Enabled is enabled: a killed deploy's group left at 0 ends disabled, with the
        # size it recorded, like the rest.
        [disable(1)],
        "red-black-disables-an-empty-enabled-group-too",
    ),
    case(
        "red-black",
        2,
        [sg(1, 2, enabled=False, capacity=2, disabled_by="web-prod-v005")],
        {},
        [disable(1)],
        "red-black-finishes-an-interrupted-disable",
    ),
    case(
        "red-black",
        2,
        [sg(2, 2), sg(1, 0, enabled=False, capacity=2), V0_DISABLED],
        {"max_remaining": 1},
        [disable(2), destroy(0), destroy(1)],
        "red-black-max-remaining-1-destroys-beyond-the-newest-older",
    ),
    case(
        "red-black",
        2,
        [sg(2, 2), sg(1, 0, enabled=False, capacity=2), V0_DISABLED],
        {"max_remaining": 2},
        [disable(2), destroy(0)],
        "red-black-max-remaining-2",
    ),
    case(
        "red-black",
        2,
        [V1_SERVING, V0_DISABLED],
        {"max_remaining": 0},
        [disable(1), destroy(0), destroy(1)],
        "red-black-max-remaining-0-disables-then-destroys-all",
    ),
    case(
        "red-black",
        2,
        [V1_SERVING],
        {"max_remaining": 5},
        [disable(1)],
        "red-black-max-remaining-above-the-count",
    ),
    case(
        "red-black",
        2,
        [sg(1, 0, enabled=False, capacity=2, disabled_by=NEW), V0_DISABLED],
        {},
        [],
        "red-black-rerun-after-the-disable-is-done",
    ),
    # --- rolling red-black ------------------------------------------------------------
    case(
        "rolling-red-black",
        4,
        [sg(0, 4)],
        {},
        [grow(1), resize(0, 3), grow(2), resize(0, 2), grow(4), disable(0)],
        "rolling-25-50-100-of-4",
    ),
    case(
        "rolling-red-black",
        4,
        [sg(0, 4)],
        {"steps": (50, 100)},
        [grow(2), resize(0, 2), grow(4), disable(0)],
        "rolling-50-100-of-4",
    ),
    case(
        "rolling-red-black",
        3,
        [sg(0, 3)],
        {},
        # 25% of 3 grows to 1 (up) and shrinks by 0 (down): capacity first.
        [grow(1), grow(2), resize(0, 2), grow(3), disable(0)],
        "rolling-of-3-rounds-growth-up-and-shrinking-down",
    ),
    case(
        "rolling-red-black",
        1,
        [sg(0, 1)],
        {},
        [grow(1), disable(0)],
        "rolling-of-1-grows-whole-then-disables",
    ),
    case(
        "rolling-red-black",
        2,
        [sg(0, 2)],
        {"steps": (10, 20, 100)},
        [grow(1), grow(2), disable(0)],
        "rolling-small-steps-of-2-never-shrink-early",
    ),
    case(
        "rolling-red-black",
        2,
        [sg(1, 2), sg(0, 4)],
        {"steps": (50, 100)},
        [grow(1), resize(1, 1), resize(0, 2), grow(2), disable(1), disable(0)],
        "rolling-shrinks-every-serving-one-by-its-own-share",
    ),
    case(
        "rolling-red-black",
        2,
        [sg(1, 2), V0_DISABLED],
        {"steps": (50, 100)},
        [grow(1), resize(1, 1), grow(2), disable(1)],
        "rolling-leaves-a-group-disabled-before-alone",
    ),
    case(
        "rolling-red-black",
        4,
        [sg(0, 4)],
        {"steps": (50, 100), "max_remaining": 0},
        [grow(2), resize(0, 2), grow(4), disable(0), destroy(0)],
        "rolling-max-remaining-0",
    ),
    # --- reruns from a half-done state: records, not the shrunken sizes ---------------------
    case(
        "rolling-red-black",
        4,
        [sg(0, 3, capacity=4)],
        {"grown": 1},
        [grow(2), resize(0, 2), grow(4), disable(0)],
        "rolling-rerun-after-the-first-step",
    ),
    case(
        "rolling-red-black",
        4,
        [sg(0, 3, capacity=4)],
        {"grown": 2},
        [resize(0, 2), grow(4), disable(0)],
        "rolling-rerun-killed-between-grow-and-shrink",
    ),
    case(
        "rolling-red-black",
        4,
        [sg(0, 2, capacity=4)],
        {"grown": 2},
        [grow(4), disable(0)],
        "rolling-rerun-after-the-second-step",
    ),
    case(
        "rolling-red-black",
        4,
        [sg(0, 4, enabled=False, capacity=4, disabled_by=NEW)],
        {"grown": 4},
        [disable(0)],
        "rolling-rerun-killed-during-the-disable",
    ),
    case(
        "rolling-red-black",
        4,
        [sg(0, 0, enabled=False, capacity=4, disabled_by=NEW)],
        {"grown": 4},
        [],
        "rolling-rerun-after-the-disable",
    ),
    case(
        "rolling-red-black",
        4,
        [sg(0, 3, capacity=4)],
        {"grown": 0},
        [grow(1), grow(2), resize(0, 2), grow(4), disable(0)],
        "rolling-rerun-with-a-fresh-group-keeps-the-shrunken-one-shrunk",
    ),
    case(
        "red-black",
        4,
        [sg(0, 2, capacity=4)],
        {},
        [disable(0)],
        "red-black-after-a-rolling-attempt-disables-the-half-shrunk",
    ),
    case(
        "rolling-red-black",
        2,
        [sg(1, 0, enabled=False, capacity=2, disabled_by="web-prod-v008"), sg(0, 2)],
        {"steps": (50, 100)},
        [grow(1), resize(0, 1), grow(2), disable(0)],
        "rolling-leaves-another-deploys-disabled-group-alone",
    ),
]


@pytest.mark.parametrize(
    ("strategy", "target", "others", "options", "expected"),
    PLANS,
)
def test_strategy_steps(strategy, target, others, options, expected) -> None:
    plan = strategy_steps(strategy, NEW, target, others, whole(others), **options)
    assert plan == expected, "\n".join(s.describe() for s in plan)
    # Only the new group and the older ones handed over are ever named.
    assert {s.group for s in plan} <= {NEW} | {g.name for g in others}


@pytest.mark.parametrize(
    ("target", "olds", "steps"),
    [
        pytest.param(4, [4], (25, 50, 100), id="4-from-4"),
        pytest.param(3, [3], (25, 50, 100), id="3-from-3"),
        pytest.param(5, [5], (33, 66, 100), id="5-from-5-thirds"),
        pytest.param(2, [4], (25, 50, 100), id="2-from-4"),
        pytest.param(6, [2], (50, 100), id="6-from-2"),
        pytest.param(3, [2, 3], (10, 50, 90, 100), id="3-from-2-and-3"),
        pytest.param(7, [7], (1, 2, 3, 100), id="7-tiny-steps"),
    ],
)
def test_rolling_never_serves_less_than_it_started_with_or_the_target(target, olds, steps):
    others = [sg(len(olds) - 1 - i, n) for i, n in enumerate(olds)]
    sizes = {NEW: 0, **{g.name: g.instances for g in others}}
    floor = min(target, sum(olds))
    for step in strategy_steps(
        "rolling-red-black", NEW, target, others, whole(others), steps=steps
    ):
        sizes[step.group] = step.instances if step.verb == "resize" else 0
        assert sum(sizes.values()) >= floor, f"after {step.describe()}: {sizes}"
    assert sizes == {NEW: target, **{g.name: 0 for g in others}}


@pytest.mark.parametrize(
    ("others", "plan", "expected"),
    [
        pytest.param([V1_SERVING, V0_DISABLED], [disable(1)], ["web-prod-v001"], id="named"),
        pytest.param(
            [sg(1, 0, enabled=False, capacity=2, disabled_by=NEW), V0_DISABLED],
            [],
            ["web-prod-v001"],
            id="disabled-by-an-earlier-attempt",
        ),
        pytest.param(
            [sg(1, 0, enabled=False, capacity=2, disabled_by="web-prod-v008")],
            [],
            [],
            id="disabled-by-another-deploy",
        ),
        pytest.param([V1_SERVING], [grow(2)], [], id="only-the-new-group"),
    ],
)
def test_touched_are_named_or_disabled_by_this_deploy(others, plan, expected) -> None:
    assert [g.name for g in touched(plan, NEW, others)] == expected


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        pytest.param(sg(0, 2), 2, id="enabled-no-record"),
        pytest.param(sg(0, 1, capacity=4), 1, id="enabled-counts-what-it-runs"),
        pytest.param(sg(0, 5, capacity=4), 5, id="scaled-up-since"),
        pytest.param(sg(0, 0, enabled=False, capacity=3), 3, id="disabled-remembers"),
        pytest.param(sg(0, 2, enabled=False, capacity=3), 3, id="disabling-remembers"),
    ],
)
def test_capacity_is_read_from_records(group, expected) -> None:
    assert capacity(group) == expected


def replacing_group(
    sequence: int, instances: int, target: int, replaced: dict[str, int]
) -> ServerGroup:
    group = sg(sequence, instances, capacity=target)
    labels = {**group.labels, LABEL_REPLACES: ",".join(f"{k}={v}" for k, v in replaced.items())}
    return ServerGroup(
        group.name, group.region, group.image, instances, True, group.created_at, labels
    )


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        pytest.param(
            [replacing_group(1, 2, 4, {"web-prod-v000": 4}), sg(0, 2)],
            {"web-prod-v001": 4, "web-prod-v000": 4},
            id="rolling-in-flux-counts-both-whole",
        ),
        pytest.param(
            [replacing_group(1, 4, 4, {"web-prod-v000": 4}), sg(0, 0, enabled=False, capacity=4)],
            {"web-prod-v001": 4, "web-prod-v000": 4},
            id="finished-the-replaced-one-remembers",
        ),
        pytest.param(
            [replacing_group(1, 2, 4, {"web-prod-v000": 4}), sg(0, 0, enabled=False, capacity=4)],
            {"web-prod-v001": 2, "web-prod-v000": 4},
            id="finished-then-resized-by-hand-counts-what-it-runs",
        ),
        pytest.param(
            [sg(1, 3), sg(0, 2)],
            {"web-prod-v001": 3, "web-prod-v000": 2},
            id="no-deploy-in-flux",
        ),
        pytest.param(
            [replacing_group(1, 1, 4, {"web-prod-v000": 3}), sg(0, 5)],
            {"web-prod-v001": 4, "web-prod-v000": 5},
            id="scaled-up-since-counts-the-larger",
        ),
    ],
)
def test_capacities_of_a_cluster_read_a_deploy_in_flux(cluster, expected) -> None:
    assert capacities(cluster) == expected
