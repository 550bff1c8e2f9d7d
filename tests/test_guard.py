"""The traffic guard (treadle.stages.guard): no stage takes away the last serving server
group of a cluster in a region unless forced; and the stages that can (destroy, disable,
resize to 0) ask it before changing anything."""

from __future__ import annotations

import pytest
from memory import CHANGES, MemoryProvider, Store, groups_of, runtime, seed, staged

from treadle.errors import InputError, Refused
from treadle.providers.base import ServerGroup
from treadle.stages.destroy import destroy
from treadle.stages.enable_disable import disable
from treadle.stages.guard import check_ratio, guard_capacity
from treadle.stages.resize import Size, resize
from treadle.stages.selection import Selector


def sg(seq: int, instances: int, enabled: bool = True, region: str = "local") -> ServerGroup:
    labels = {} if enabled else {"treadle.disabled-instances": "2"}
    return ServerGroup(f"web-prod-v{seq:03d}", region, "web:1", instances, enabled, labels=labels)


V1 = sg(1, 2)

GUARD = [
    # (group, the cluster's groups in its region (itself included), refused), id
    (V1, [V1], True, "last-serving"),
    (V1, [V1, sg(0, 2)], False, "another-serves"),
    (V1, [V1, sg(0, 0, enabled=False)], True, "sibling-disabled"),
    (V1, [V1, sg(0, 2, enabled=False)], True, "sibling-disabled-still-stopping"),
    (V1, [V1, sg(0, 0)], True, "sibling-enabled-at-0"),
    (sg(1, 0), [sg(1, 0)], False, "serves-nothing-at-0"),
    (sg(1, 0, enabled=False), [sg(1, 0, enabled=False)], False, "already-disabled"),
    (sg(1, 2, enabled=False), [sg(1, 2, enabled=False)], False, "disabled-still-stopping"),
]


@pytest.mark.parametrize("force", [False, True], ids=["unforced", "forced"])
@pytest.mark.parametrize("action", ["destroy", "disable", "resize to 0"])
@pytest.mark.parametrize(
    ("group", "siblings", "refused"), [pytest.param(*row[:-1], id=row[-1]) for row in GUARD]
)
def test_guard_capacity(group, siblings, refused, action, force) -> None:
    def guarded() -> None:
        guard_capacity(siblings, {group.name: 0}, f"{action} {group.name}", force=force)

    if refused and not force:
        with pytest.raises(Refused, match=f"refusing to {action} {group.name}") as e:
            guarded()
        assert e.value.exit_code == 3 and "--force" in str(e.value)
    else:
        guarded()


RATIO = [
    # (the cluster: (sequence, instances), what would remain, ratio, refused), id
    ([(0, 4), (1, 4)], {"web-prod-v001": 0}, 0.5, True, "half-is-not-more-than-half"),
    ([(0, 4), (1, 4)], {"web-prod-v001": 1}, 0.5, False, "five-of-eight-is-more"),
    ([(0, 4), (1, 4)], {"web-prod-v001": 0}, 0.25, False, "half-is-more-than-a-quarter"),
    ([(0, 4), (1, 4)], {"web-prod-v001": 0}, None, False, "no-ratio-another-serves"),
    ([(0, 4)], {"web-prod-v000": 1}, 0.25, True, "a-quarter-is-not-more-than-a-quarter"),
    ([(0, 4)], {"web-prod-v000": 2}, 0.25, False, "half-of-one-group"),
    ([(0, 4)], {"web-prod-v000": 6}, 0.5, False, "growing-is-never-refused"),
    ([(0, 4), (1, 4)], {"web-prod-v000": 0, "web-prod-v001": 0}, 0.0, True, "all-at-once"),
]


@pytest.mark.parametrize(
    ("cluster", "after", "ratio", "refused"), [pytest.param(*row[:-1], id=row[-1]) for row in RATIO]
)
def test_min_capacity_ratio(cluster, after, ratio, refused) -> None:
    siblings = [sg(seq, n) for seq, n in cluster]
    if refused:
        with pytest.raises(Refused, match="refusing to shrink"):
            guard_capacity(siblings, after, "shrink", force=False, ratio=ratio)
    else:
        guard_capacity(siblings, after, "shrink", force=False, ratio=ratio)
    guard_capacity(siblings, after, "shrink", force=True, ratio=ratio)


@pytest.mark.parametrize("ratio", [-0.1, 0.51, 2.0])
def test_a_ratio_out_of_range_is_bad_input(ratio: float) -> None:
    with pytest.raises(InputError, match="--min-capacity-ratio"):
        check_ratio(ratio)


# --- the stages ----------------------------------------------------------------------


def destroy_it(rt, force):
    return destroy(rt, Selector("local", server_group="web-prod-v001"), force=force)


def disable_it(rt, force):
    return disable(rt, Selector("local", server_group="web-prod-v001"), force=force)


def resize_to_0(rt, force):
    return resize(rt, Selector("local", server_group="web-prod-v001"), Size(0), force=force)


def scale_down_all(rt, force):
    return resize(
        rt,
        Selector("local", cluster="web-prod", target="newest"),
        Size(scale_pct=-100),
        force=force,
    )


STAGES = [
    pytest.param(destroy_it, {"web-prod-v001": None}, id="destroy"),
    pytest.param(disable_it, {"web-prod-v001": (False, 0)}, id="disable"),
    pytest.param(resize_to_0, {"web-prod-v001": (True, 0)}, id="resize-to-0"),
    pytest.param(scale_down_all, {"web-prod-v001": (True, 0)}, id="scale-pct-minus-100"),
]

CLUSTERS = [
    pytest.param(lambda store: None, True, id="alone"),
    pytest.param(
        lambda store: seed(store, "web-prod-v000", 0, enabled=False, capacity=2),
        True,
        id="with-a-disabled-sibling",
    ),
    pytest.param(
        lambda store: seed(store, "web-prod-v000", 2, region="other"),
        True,
        id="serving-only-in-another-region",
    ),
    pytest.param(lambda store: seed(store, "web-prod-v000", 1), False, id="with-a-serving-sibling"),
]


@pytest.mark.parametrize("force", [False, True], ids=["unforced", "forced"])
@pytest.mark.parametrize(("add_sibling", "guarded"), CLUSTERS)
@pytest.mark.parametrize(("stage", "after"), STAGES)
def test_stages_ask_the_guard_before_changing_anything(
    stage, after, add_sibling, guarded, force
) -> None:
    store = Store()
    seed(store, "web-prod-v001", 2)
    add_sibling(store)
    before = groups_of(store, "local", "web-prod")
    provider = MemoryProvider(store=store)
    with staged(runtime(provider)) as rt:
        if guarded and not force:
            with pytest.raises(Refused, match="last enabled server group"):
                stage(rt, force)
        else:
            stage(rt, force)
    expected = before if guarded and not force else {**before, **after}
    assert groups_of(store, "local", "web-prod") == {
        name: state for name, state in expected.items() if state is not None
    }
    if guarded and not force:
        assert provider.called(*CHANGES) == [] and not rt.changed
    # The cluster lease was taken and given back either way.
    assert provider.count("create_lease") == provider.count("delete_lease") == 1
    assert store.leases == {}


def test_resizing_the_last_group_to_more_than_0_needs_no_force() -> None:
    store = Store()
    seed(store, "web-prod-v001", 2)
    with staged(runtime(MemoryProvider(store=store))) as rt:
        resize(rt, Selector("local", server_group="web-prod-v001"), Size(scale_down=1))
    assert groups_of(store, "local", "web-prod") == {"web-prod-v001": (True, 1)}
