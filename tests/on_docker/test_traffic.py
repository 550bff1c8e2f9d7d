"""A cluster's stable address on a real engine: its server groups answer under the
cluster's name on a network, a group taken out of service leaves that alias before it
stops, and one kept running outside it comes back at once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from dockerish import SERVED, deploy_on, treadle_on_engine

from treadle.console import Console
from treadle.providers.docker import DockerProvider
from treadle.waiting import Deadline

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


def test_an_instance_stopped_in_the_alias_starts_outside_it(
    engine: Any, region: str, tmp_path: Path
) -> None:
    """A disable killed between stopping the instances and connecting them again without
    the alias leaves them stopped in it: whatever starts them again starts them outside
    it, and they join once healthy, never before they answer."""
    network = f"{region}-web"
    first = deploy_on("docker", region, tmp_path, SERVED, "--instances", "2", "--network", network)
    assert first.code == 0, first
    listed = engine.containers(filters={"label": [f"treadle.region={region}"]})
    instances = [c["Id"] for c in listed if "treadle.instance" in c["Labels"]]
    for container in instances:
        engine.stop(container)

    def aliases() -> list[list[str]]:
        return [
            engine.inspect_container(c)["NetworkSettings"]["Networks"][network]["Aliases"] or []
            for c in instances
        ]

    assert all("web-prod" in a for a in aliases()), aliases()
    provider = DockerProvider(deadline=Deadline(60), console=Console())
    try:
        group = provider.server_group(region, "web-prod-v000")
        assert group is not None
        provider.enable(group, 2, {})
        # Started, not yet healthy: outside the alias, however the engine kept it.
        assert all(engine.inspect_container(c)["State"]["Running"] for c in instances)
        assert all("web-prod" not in a for a in aliases()), aliases()
        provider.join(group)
        assert members(engine, region, network) == {"web-prod-v000": True}
    finally:
        provider.close()


def test_a_keep_running_disable_cut_short_is_never_marked_kept_while_in_the_alias(
    engine: Any, region: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed before its instances left the alias, a --keep-running disable leaves the
    group enabled (not "disabled, kept running" while it still serves), so that its rerun
    takes it out instead of finding it disabled already."""
    network = f"{region}-web"
    args = ["--network", network, "--keep-running"]
    first = deploy_on("docker", region, tmp_path, SERVED, "--instances", "2", *args)
    assert first.code == 0, first
    provider = DockerProvider(deadline=Deadline(60), console=Console())
    try:
        group = provider.server_group(region, "web-prod-v000")
        assert group is not None

        def killed(container: str, **kwargs: Any) -> None:
            raise KeyboardInterrupt("the job is killed")

        monkeypatch.setattr(provider.api, "stop", killed)
        with pytest.raises(KeyboardInterrupt):
            provider.disable(group, {"treadle.disabled-instances": "2"}, keep_running=True)
        after = provider.server_group(region, "web-prod-v000")
        assert after is not None and after.enabled
    finally:
        provider.close()
    assert members(engine, region, network) == {"web-prod-v000": True}
    again = treadle_on_engine(
        "disable",
        "--provider",
        "docker",
        "--server-group",
        "web-prod-v000",
        "--region",
        region,
        "--keep-running",
        "--force",
    )
    assert again.code == 0 and again.result is not None, again
    assert again.result["changed"] is True
    assert members(engine, region, network) == {"web-prod-v000": False}


def test_an_instance_that_replaces_a_terminated_one_joins_the_alias(
    engine: Any, region: str, tmp_path: Path
) -> None:
    network = f"{region}-web"
    first = deploy_on("docker", region, tmp_path, SERVED, "--instances", "2", "--network", network)
    assert first.code == 0, first
    terminated = treadle_on_engine(
        "terminate-instances",
        "--provider",
        "docker",
        "--server-group",
        "web-prod-v000",
        "--region",
        region,
        "--count",
        "1",
    )
    assert terminated.code == 0, terminated
    running = engine.containers(filters={"label": [f"treadle.region={region}"]})
    aliases = [
        engine.inspect_container(c["Id"])["NetworkSettings"]["Networks"][network]["Aliases"] or []
        for c in running
        if "treadle.instance" in c["Labels"]
    ]
    assert len(aliases) == 2 and all("web-prod" in a for a in aliases), aliases


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
