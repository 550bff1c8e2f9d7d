import pytest

from treadle.errors import InputError
from treadle.naming import (
    Cluster,
    cluster,
    next_sequence,
    parse_cluster,
    parse_server_group,
    try_parse_server_group,
)


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (("web",), "web"),
        (("web", "prod"), "web-prod"),
        (("web", "prod", "canary"), "web-prod-canary"),
        (("web", "", "canary"), "web--canary"),
        (("web", "prod", "blue-green"), "web-prod-blue-green"),
    ],
)
def test_cluster_names_follow_spinnaker(parts, name):
    built = cluster(*parts)
    assert built.name == name
    assert parse_cluster(name) == built
    assert parse_server_group(built.server_group(7)).cluster == built
    assert built.server_group(7) == f"{name}-v007"


@pytest.mark.parametrize(
    ("parts", "fix"),
    [
        (("Web",), "application"),
        (("web_app",), "application"),
        (("web", "pr-od"), "stack"),
        (("web", "prod", "-canary"), "detail"),
        (("web", "prod", "can--ary"), "detail"),
        (("",), "application"),
        (("a" * 60, "prod"), "too long"),
    ],
)
def test_invalid_parts_are_named_in_the_error(parts, fix):
    with pytest.raises(InputError, match=fix):
        cluster(*parts)


def test_server_group_names_parse_or_are_not_treadles():
    assert parse_server_group("web-prod-canary-v012").sequence == 12
    assert parse_server_group("web-v000").cluster == Cluster("web")
    for foreign in ("web", "web-prod-v1", "web-prod-v0001", "Web-v001", "/web-v001"):
        assert try_parse_server_group(foreign) is None
        with pytest.raises(InputError, match="app\\[-stack\\[-detail\\]\\]-vNNN"):
            parse_server_group(foreign)


@pytest.mark.parametrize(
    ("used", "expected"),
    [
        ([], 0),
        ([0], 1),
        ([3, 7, 5], 8),
        ([999], 0),
        ([999, 0, 1], 2),
        ([998, 999, 0], 1),
    ],
)
def test_next_sequence_wraps_and_skips_used(used, expected):
    assert next_sequence(used) == expected


def test_every_sequence_used_is_an_input_error():
    with pytest.raises(InputError, match="every sequence"):
        next_sequence(range(1000))
