"""What a stage acts on (treadle.stages.selection): `--server-group NAME` or `--cluster
NAME --target newest|previous|oldest|largest`, over a cluster's groups in age order."""

from __future__ import annotations

import pytest
from memory import MemoryProvider, Store, runtime, seed

from treadle.errors import InputError, NotFound
from treadle.providers.base import ServerGroup
from treadle.stages.selection import Selector, age_key, of_cluster, pick

# --- bad combinations: refused before any call that reads the cluster -------------------


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        pytest.param(Selector("local"), "name what to act on", id="nothing"),
        pytest.param(
            Selector("local", server_group="web-prod-v001", cluster="web-prod", target="newest"),
            "not both",
            id="server-group-and-cluster",
        ),
        pytest.param(
            Selector("local", server_group="web-prod-v001", target="newest"),
            "--target goes with --cluster",
            id="server-group-with-target",
        ),
        pytest.param(
            Selector("local", cluster="web-prod"), "--cluster needs --target", id="no-target"
        ),
        pytest.param(
            Selector("local", cluster="web-prod", target="biggest"),
            "unknown --target 'biggest'",
            id="unknown-target",
        ),
        pytest.param(
            Selector("local", server_group="web-prod"),
            "invalid server group",
            id="cluster-given-as-server-group",
        ),
        pytest.param(
            Selector("local", cluster="web-prod-v001!", target="newest"),
            "invalid cluster",
            id="bad-cluster-name",
        ),
        pytest.param(
            Selector("Not A Region", server_group="web-prod-v001"),
            "invalid region",
            id="bad-region",
        ),
    ],
)
def test_bad_combinations_are_input_errors(selector: Selector, message: str) -> None:
    provider = MemoryProvider(store=Store())
    with pytest.raises(InputError, match=message):
        selector.checked(provider)
    assert provider.called("server_groups", "server_group") == []


def test_an_empty_region_is_the_providers_default() -> None:
    checked = Selector("", server_group="web-prod-v001").checked(MemoryProvider(store=Store()))
    assert checked.region == "local"
    assert checked.cluster_name == "web-prod"


# --- picking among a cluster's groups -------------------------------------------------


def group(seq: int, instances: int, created: str | None, **labels: str) -> ServerGroup:
    return ServerGroup(
        f"web-prod-v{seq:03d}",
        "local",
        "web:1",
        instances,
        enabled="treadle.disabled-instances" not in labels,
        created_at=created,
        labels=labels,
    )


V0 = group(0, 2, "2026-01-01T00:00:00Z")
V1 = group(1, 5, "2026-01-02T00:00:00Z")
V2 = group(2, 3, "2026-01-03T00:00:00Z")
NEWEST_FIRST = [V2, V1, V0]


@pytest.mark.parametrize(
    ("groups", "target", "expected"),
    [
        pytest.param(NEWEST_FIRST, "newest", V2, id="newest"),
        pytest.param(NEWEST_FIRST, "previous", V1, id="previous-is-second-newest"),
        pytest.param(NEWEST_FIRST, "oldest", V0, id="oldest"),
        pytest.param(NEWEST_FIRST, "largest", V1, id="largest"),
        pytest.param([V0], "previous", None, id="previous-of-one"),
        pytest.param([V0], "oldest", V0, id="oldest-of-one-is-it"),
        pytest.param([], "newest", None, id="newest-of-none"),
        pytest.param([], "oldest", None, id="oldest-of-none"),
        pytest.param([], "largest", None, id="largest-of-none"),
        pytest.param(
            [group(2, 2, "c"), group(1, 2, "b")], "largest", group(2, 2, "c"), id="tie-newest"
        ),
        pytest.param(
            [group(1, 0, "b", **{"treadle.disabled-instances": "9"}), group(0, 4, "a")],
            "largest",
            group(1, 0, "b", **{"treadle.disabled-instances": "9"}),
            id="largest-by-remembered-size",
        ),
        pytest.param(
            [
                group(
                    1, 1, "b", **{"treadle.capacity": "6", "treadle.replaces": "web-prod-v000=4"}
                ),
                group(0, 4, "a"),
            ],
            "largest",
            group(1, 1, "b", **{"treadle.capacity": "6", "treadle.replaces": "web-prod-v000=4"}),
            id="largest-by-recorded-size-when-half-grown",
        ),
    ],
)
def test_pick(groups, target, expected) -> None:
    assert pick(groups, target) == expected


def test_pick_refuses_an_unknown_target() -> None:
    with pytest.raises(InputError, match="unknown --target"):
        pick(NEWEST_FIRST, "middle")


@pytest.mark.parametrize(
    ("groups", "oldest_to_newest"),
    [
        pytest.param([V2, V0, V1], ["v000", "v001", "v002"], id="by-creation-time"),
        pytest.param(
            [group(0, 1, "2026-02-01T00:00:00Z"), group(999, 1, "2026-01-01T00:00:00Z")],
            ["v999", "v000"],
            id="sequence-wrapped-after-999",
        ),
        pytest.param(
            [group(3, 1, "2026-01-01T00:00:00Z"), group(2, 1, "2026-01-01T00:00:00Z")],
            ["v002", "v003"],
            id="same-time-by-sequence",
        ),
        pytest.param(
            [group(1, 1, "2026-01-01T00:00:00Z"), group(5, 1, None)],
            ["v005", "v001"],
            id="unknown-creation-time-is-oldest",
        ),
    ],
)
def test_age_key_orders_oldest_first(groups, oldest_to_newest) -> None:
    ordered = sorted(groups, key=age_key)
    assert [g.name.rsplit("-", 1)[1] for g in ordered] == oldest_to_newest


def test_of_cluster_keeps_only_that_cluster_newest_first() -> None:
    others = [
        ServerGroup("web-prod-canary-v009", "local", "web:1", 1, created_at="2026-09"),
        ServerGroup("web-v008", "local", "web:1", 1, created_at="2026-08"),
        ServerGroup("webprod-v007", "local", "web:1", 1, created_at="2026-07"),
    ]
    assert of_cluster([V0, *others, V2, V1], V0.cluster) == NEWEST_FIRST


# --- through a runtime over the provider ---------------------------------------------


@pytest.fixture
def store() -> Store:
    store = Store()
    seed(store, "web-prod-v000", 2, enabled=False, capacity=2)
    seed(store, "web-prod-v001", 3)
    seed(store, "web-prod-v002", 1)
    seed(store, "web-prod-canary-v003", 9)
    seed(store, "web-prod-v004", 7, region="other")
    return store


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        pytest.param(Selector("local", server_group="web-prod-v001"), "web-prod-v001", id="name"),
        pytest.param(Selector("local", cluster="web-prod", target="newest"), "web-prod-v002"),
        pytest.param(Selector("local", cluster="web-prod", target="previous"), "web-prod-v001"),
        pytest.param(
            Selector("local", cluster="web-prod", target="oldest"),
            "web-prod-v000",
            id="oldest-disabled-included",
        ),
        pytest.param(Selector("local", cluster="web-prod", target="largest"), "web-prod-v001"),
        pytest.param(
            Selector("other", cluster="web-prod", target="oldest"),
            "web-prod-v004",
            id="only-its-region",
        ),
        pytest.param(
            Selector("local", cluster="web-prod-canary", target="newest"),
            "web-prod-canary-v003",
            id="only-its-cluster",
        ),
    ],
)
def test_find_in_the_region(store: Store, selector: Selector, expected: str) -> None:
    rt = runtime(MemoryProvider(store=store))
    found, siblings = selector.checked(rt.provider).require(rt)
    assert found.name == expected
    assert {g.cluster for g in siblings} == {found.cluster}
    assert {g.region for g in siblings} == {selector.region}


@pytest.mark.parametrize(
    "selector",
    [
        pytest.param(Selector("local", server_group="web-prod-v042"), id="no-such-group"),
        pytest.param(Selector("other", server_group="web-prod-v001"), id="in-another-region"),
        pytest.param(Selector("local", cluster="web-test", target="newest"), id="empty-cluster"),
        pytest.param(Selector("other", cluster="web-prod", target="previous"), id="no-previous"),
    ],
)
def test_nothing_found_is_none_or_not_found(store: Store, selector: Selector) -> None:
    rt = runtime(MemoryProvider(store=store))
    checked = selector.checked(rt.provider)
    assert checked.find(rt)[0] is None
    with pytest.raises(NotFound, match="no server group found"):
        checked.require(rt)
