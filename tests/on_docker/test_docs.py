"""The README's Docker walkthrough is true: each of its commands runs as written on a real
engine, with either provider, exits as the page says, and leaves what the page says.

The page names public busybox images, which cannot be pulled here: the local test images
(busybox with httpd and wget) stand in for them. Each run gets a region of its own
through TREADLE_REGION.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from dockerish import IMAGE, IMAGE_V2, treadle_on_engine
from walkthroughs import walkthrough

pytestmark = pytest.mark.docker

ROOT = Path(__file__).parent.parent.parent
STAND_INS = {
    "busybox:latest": IMAGE,
    "busybox:1.36": IMAGE,
    "busybox:1.37": IMAGE_V2,
    "registry.example/shop:1.0": IMAGE,
    "registry.example/shop:1.1": IMAGE_V2,
    "registry.example/shop:1.2": IMAGE,
}


def run_walkthrough(
    name: str, tmp_path: Path, env: dict[str, str], names: dict[str, str] | None = None
) -> None:
    """Each step of a README walkthrough, in a folder holding the examples it names;
    `names`: words of the page replaced by the test's own (a network's name)."""
    stand_ins = {**STAND_INS, **(names or {})}
    (tmp_path / "examples").mkdir()
    for example in ("hello.yaml", "compose.yaml", "hello.env"):
        (tmp_path / "examples" / example).write_text((ROOT / "examples" / example).read_text())
    for step in walkthrough(name):
        words = [stand_ins.get(word, word) for word in step.words]
        assert words[0] == "treadle", step.line
        outcome = treadle_on_engine(*words[1:], env=env)
        assert outcome.code == step.exit_code, f"{step.line}\n{outcome}"


def test_quick_start(region: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    run_walkthrough("quickstart", tmp_path, {"TREADLE_REGION": region})
    found = treadle_on_engine("find-image", "--cluster", "hello", env={"TREADLE_REGION": region})
    assert found.result is not None and found.result["server_group"] == "hello-v000"
    assert found.result["endpoints"], "where the first server group answers"


@pytest.mark.parametrize("provider", ["docker", "swarm"])
def test_walkthrough(
    provider: str,
    request: pytest.FixtureRequest,
    region: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if provider == "swarm":
        request.getfixturevalue("swarm")
    monkeypatch.chdir(tmp_path)
    env = {"TREADLE_PROVIDER": provider, "TREADLE_REGION": region}
    run_walkthrough("docker", tmp_path, env)

    assert json.loads(Path("image.json").read_text())["image"] == IMAGE_V2
    assert json.loads(Path("v000.json").read_text())["endpoints"], "where hello-v000 answered"
    found = treadle_on_engine(
        "find-image", "--cluster", "hello", "--include-disabled", "--selection", "fail", env=env
    )
    assert found.code == 0, found
    result: dict[str, Any] = found.result or {}
    assert (result["server_group"], result["enabled"], result["instances"]) == (
        "hello-v000",
        True,
        2,
    )


@pytest.mark.parametrize("provider", ["docker", "swarm"])
def test_compose_walkthrough(
    provider: str,
    request: pytest.FixtureRequest,
    region: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if provider == "swarm":
        request.getfixturevalue("swarm")
    monkeypatch.chdir(tmp_path)
    # The file's network and volume, made by the walkthrough: the test's own.
    names = {"HELLO_NETWORK": f"{region}-backend", "HELLO_VOLUME": f"{region}-data"}
    run_walkthrough(
        "compose", tmp_path, {"TREADLE_PROVIDER": provider, "TREADLE_REGION": region, **names}
    )

    result = json.loads(Path("web-v001.json").read_text())
    assert (result["server_group"], result["disabled_server_groups"]) == (
        "hello-v001",
        ["hello-v000"],
    )
    with httpx.Client(trust_env=False, timeout=5) as client:
        visits = client.get(f"http://{result['endpoints'][0]}/visits").text
    assert visits.splitlines() == ["hello from the env file, dev"] * 4


@pytest.mark.parametrize("provider", ["docker", "swarm"])
def test_pipeline_walkthrough(
    provider: str,
    request: pytest.FixtureRequest,
    region: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if provider == "swarm":
        request.getfixturevalue("swarm")
    monkeypatch.chdir(tmp_path)
    env = {"TREADLE_PROVIDER": provider, "TREADLE_REGION": region}
    run_walkthrough("pipeline", tmp_path, env)
    found = treadle_on_engine(
        "find-image", "--cluster", "shop", "--include-disabled", "--selection", "fail", env=env
    )
    assert found.code == 0, found
    result: dict[str, Any] = found.result or {}
    assert (result["server_group"], result["instances"]) == ("shop-v002", 2)


def test_traffic_walkthrough(
    engine: Any, region: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    network = f"{region}-net"
    run_walkthrough("traffic", tmp_path, {"TREADLE_REGION": region}, {"hello-net": network})
    # hello-v000 answers as hello again; hello-v001 runs on outside the alias.
    assert in_alias(engine, region, network, "hello") == {
        "hello-v000": True,
        "hello-v001": False,
    }
    verified = json.loads(Path("canary.json").read_text())
    assert verified["canary_instances"] == 1


def in_alias(engine: Any, region: str, network: str, alias: str) -> dict[str, bool]:
    """server group -> whether one of its running containers answers as `alias`."""
    found: dict[str, bool] = {}
    for container in engine.containers(filters={"label": [f"treadle.region={region}"]}):
        group = container["Labels"].get("treadle.server-group")
        if not group or "treadle.instance" not in container["Labels"]:
            continue
        networks = engine.inspect_container(container["Id"])["NetworkSettings"]["Networks"]
        aliases = (networks.get(network) or {}).get("Aliases") or []
        found[group] = found.get(group, False) or alias in aliases
    return found
