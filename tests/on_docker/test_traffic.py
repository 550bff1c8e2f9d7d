"""A cluster's stable address on a real engine: its server groups answer under the
cluster's name on a network, a group taken out of service leaves that alias before it
stops, and one kept running outside it comes back at once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from dockerish import SERVED, deploy_on, treadle_on_engine

pytestmark = pytest.mark.docker


def members(engine: Any, region: str, network: str) -> dict[str, bool]:
    """server group -> whether one of its running containers is in the alias web-prod."""
    found: dict[str, bool] = {}
    listed = engine.containers(filters={"label": [f"treadle.region={region}"]})
    for container in listed:
        group = container["Labels"].get("treadle.server-group")
        if not group or "treadle.instance" not in container["Labels"]:
            continue
        inspected = engine.inspect_container(container["Id"])
        endpoint = inspected["NetworkSettings"]["Networks"].get(network) or {}
        found[group] = found.get(group, False) or "web-prod" in (endpoint.get("Aliases") or [])
    return found


def test_a_disabled_group_leaves_the_alias_and_comes_back_at_once(
    engine: Any, region: str, tmp_path: Path
) -> None:
    network = f"{region}-web"
    args = ["--network", network, "--keep-running"]
    first = deploy_on("docker", region, tmp_path, SERVED, "--instances", "2", *args)
    assert first.code == 0, first
    assert members(engine, region, network) == {"web-prod-v000": True}
    second = deploy_on("docker", region, tmp_path, SERVED, "--strategy", "red-black", *args)
    assert second.code == 0, second
    # The old one runs on, outside the alias.
    assert members(engine, region, network) == {"web-prod-v000": False, "web-prod-v001": True}
    started = time.monotonic()
    rolled = treadle_on_engine(
        "rollback",
        "--provider",
        "docker",
        "--cluster",
        "web-prod",
        "--region",
        region,
        "--keep-running",
    )
    took = time.monotonic() - started
    assert rolled.code == 0, rolled
    assert members(engine, region, network) == {"web-prod-v000": True, "web-prod-v001": False}
    assert took < 5, f"a rollback to a group kept running took {took:.1f}s"


def test_marathon_has_no_network_alias(tmp_path: Path) -> None:
    refused = treadle_on_engine(
        "deploy",
        "--marathon-url",
        "http://127.0.0.1:9",
        "--app",
        "web",
        "--image",
        "web:1",
        "--network",
        "web",
    )
    assert refused.code == 2, refused
    assert "--network" in refused.stderr
