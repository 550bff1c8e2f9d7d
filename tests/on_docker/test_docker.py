"""What only the Docker provider does, on a real engine: endpoints on 127.0.0.1, health
checks from the spec, containers kept while disabled, failures seen before the timeout,
and what happens without an engine."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from dockerish import SERVED, deploy_on, remove_region, treadle_on_engine, unavailable
from helpers import Outcome, treadle

pytestmark = pytest.mark.docker


def deploy(region: str, tmp_path: Path, spec: dict[str, Any] | None = None, *args: str) -> Outcome:
    return deploy_on("docker", region, tmp_path, spec, *args)


def containers(engine: Any, region: str) -> dict[str, dict[str, Any]]:
    """name -> the engine's listing, for every container of the region."""
    listed = engine.containers(all=True, filters={"label": [f"treadle.region={region}"]})
    return {c["Names"][0].lstrip("/"): c for c in listed}


def fetch(endpoint: str) -> str:
    # Straight to the published port: no proxy from the environment.
    with httpx.Client(trust_env=False, timeout=5) as client:
        return client.get(f"http://{endpoint}/").text


def test_endpoints_answer_on_loopback_once_the_spec_health_check_passes(
    engine: Any, region: str, tmp_path: Path
) -> None:
    deployed = deploy(region, tmp_path, SERVED, "--instances", "2")
    assert deployed.code == 0, deployed
    # Seen before both pass (how many had passed by the first look depends on the load).
    waited = re.search(r"web-prod-v000: [01]/2 healthy, 2 running", deployed.stderr)
    assert waited is not None, "the check is waited for"
    endpoints = deployed.result["endpoints"]  # type: ignore[index]
    assert len(endpoints) == 2 and all(e.startswith("127.0.0.1:") for e in endpoints)
    assert [fetch(e) for e in endpoints] == ["1\n", "1\n"]

    found = treadle_on_engine(
        "find-image", "--provider", "docker", "--cluster", "web-prod", "--region", region
    )
    assert found.code == 0 and found.result is not None
    assert found.result["endpoints"] == endpoints

    instance = engine.inspect_container(f"{region}_web-prod-v000-1")
    assert instance["Config"]["Healthcheck"] == {
        "Test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"],
        "Interval": 500_000_000,
        "Retries": 3,
    }
    assert instance["HostConfig"]["PortBindings"] == {
        "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]
    }


def test_a_spec_health_check_that_fails_fails_the_deploy_in_time(
    region: str, tmp_path: Path
) -> None:
    failing = {"healthcheck": {"test": ["CMD", "false"], "interval": "200ms", "retries": 1}}
    started = time.monotonic()
    deployed = deploy(region, tmp_path, failing, "--timeout", "2s")
    assert deployed.code == 1, deployed
    assert time.monotonic() - started < 10
    assert "web-prod-v000: not done after 2s" in deployed.stderr
    assert "0/1 healthy, 1 running" in deployed.stderr


def test_disable_keeps_the_containers_stopped_and_enable_starts_the_same_ones(
    engine: Any, region: str, tmp_path: Path
) -> None:
    assert deploy(region, tmp_path, None, "--instances", "2").code == 0
    before = containers(engine, region)
    assert {name: c["State"] for name, c in before.items()} == {
        f"{region}_web-prod-v000": "created",
        f"{region}_web-prod-v000-1": "running",
        f"{region}_web-prod-v000-2": "running",
    }
    disabled = treadle_on_engine(
        "disable",
        "--provider",
        "docker",
        "--region",
        region,
        "--server-group",
        "web-prod-v000",
        "--force",
    )
    assert disabled.code == 0, disabled
    stopped = containers(engine, region)
    assert stopped[f"{region}_web-prod-v000-1"]["State"] == "exited"
    assert stopped[f"{region}_web-prod-v000"]["Labels"]["treadle.disabled-instances"] == "2"

    enabled = treadle_on_engine(
        "enable", "--provider", "docker", "--region", region, "--server-group", "web-prod-v000"
    )
    assert enabled.code == 0, enabled
    after = containers(engine, region)
    instances = [f"{region}_web-prod-v000-1", f"{region}_web-prod-v000-2"]
    assert [after[n]["Id"] for n in instances] == [before[n]["Id"] for n in instances], (
        "kept, not made anew"
    )
    assert all(after[n]["State"] == "running" for n in instances)
    assert "treadle.disabled-instances" not in after[f"{region}_web-prod-v000"]["Labels"]


def test_resize_removes_the_newest_containers_first(
    engine: Any, region: str, tmp_path: Path
) -> None:
    assert deploy(region, tmp_path, None, "--instances", "3").code == 0
    resized = treadle_on_engine(
        "resize",
        "--provider",
        "docker",
        "--region",
        region,
        "--server-group",
        "web-prod-v000",
        "--instances",
        "1",
    )
    assert resized.code == 0, resized
    assert sorted(containers(engine, region)) == [
        f"{region}_web-prod-v000",
        f"{region}_web-prod-v000-1",
    ]


def test_regions_keep_apart(engine: Any, region: str, tmp_path: Path) -> None:
    other = region + "b"
    try:
        assert deploy(region, tmp_path).code == 0
        assert deploy(other, tmp_path, None, "--instances", "2").code == 0
        assert f"{region}_web-prod-v000-1" in containers(engine, region)
        assert sorted(containers(engine, other)) == [
            f"{other}_web-prod-v000",
            f"{other}_web-prod-v000-1",
            f"{other}_web-prod-v000-2",
        ]
        both = treadle_on_engine(
            "find-image",
            "--provider",
            "docker",
            "--cluster",
            "web-prod",
            "--region",
            region,
            "--region",
            other,
            "--selection",
            "largest",
        )
        assert both.code == 0 and both.result is not None
        assert (both.result["region"], both.result["instances"], both.result["candidates"]) == (
            other,
            2,
            2,
        )
    finally:
        remove_region(engine, other)


@pytest.mark.parametrize(
    "command, message",
    [
        (["sh", "-c", "exit 3"], "web-prod-v000-1 exited 3 times, the last time with exit code 3"),
        (["no-such-command"], "web-prod-v000-1 cannot start:"),
    ],
)
def test_containers_that_keep_failing_fail_the_deploy_before_its_timeout(
    region: str, tmp_path: Path, command: list[str], message: str
) -> None:
    started = time.monotonic()
    deployed = deploy(region, tmp_path, {"command": command}, "--rollback-on-failure")
    assert deployed.code == 1, deployed
    assert time.monotonic() - started < 20, "a crash loop is a failure long before --timeout 60s"
    assert message in deployed.stderr
    assert deployed.result is not None and deployed.result["rolled_back"] is True


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            {"ports": ["eighty"]},
            "spec: ports[0] target must be a port number (1-65535), not 'eighty'",
        ),
        (
            {"healthcheck": {"test": "true", "interval": "soon"}},
            "spec: healthcheck.interval must be a duration",
        ),
        ({"secrets": ["token"]}, "spec: secrets: Swarm's only (--provider swarm)"),
    ],
)
def test_a_bad_spec_is_exit_2_and_creates_nothing(
    engine: Any, region: str, tmp_path: Path, spec: dict[str, Any], message: str
) -> None:
    deployed = deploy(region, tmp_path, spec)
    assert deployed.code == 2, deployed
    assert deployed.error_lines == [
        f"error: {message}" + deployed.error_lines[0][len("error: " + message) :]
    ]
    assert message in deployed.result["error"]["message"]  # type: ignore[index]
    assert containers(engine, region) == {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("provider", ["docker", "swarm"])
def test_no_engine_is_exit_4_at_once_saying_how_to_point_at_one(provider: str) -> None:
    host = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    outcome = treadle(
        "find-image",
        "--provider",
        provider,
        "--cluster",
        "web-prod",
        "--timeout",
        "10m",
        env={"DOCKER_HOST": host},
    )
    assert outcome.code == 4, outcome
    assert time.monotonic() - started < 5
    assert outcome.error_lines == [
        f"error: cannot reach a Docker engine at {host} (connection refused): start the Docker daemon, "
        "or set DOCKER_HOST to an engine that runs (unix:///path/to/docker.sock, or tcp://HOST:2376 "
        "with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)"
    ]
    assert outcome.result is not None and outcome.result["error"]["type"] == "ProviderUnavailable"


def test_without_an_engine_docker_tests_skip_unless_docker_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TREADLE_REQUIRE_DOCKER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no engine"):
        unavailable("no engine")
    monkeypatch.setenv("TREADLE_REQUIRE_DOCKER", "1")
    with pytest.raises(pytest.fail.Exception, match="Docker tests must run"):
        unavailable("no engine")


def test_an_image_the_engine_lacks_is_pulled_first(engine: Any, region: str) -> None:
    # A registry on a closed port of this machine: the pull fails at once.
    image = f"127.0.0.1:{free_port()}/web:1"
    deployed = treadle_on_engine(
        "deploy",
        "--provider",
        "docker",
        "--cluster",
        "web-prod",
        "--image",
        image,
        "--region",
        region,
        "--timeout",
        "30s",
    )
    assert deployed.code == 1, deployed
    assert f"pulling {image}" in deployed.stderr
    assert f"error: cannot pull {image}: " in deployed.stderr
    assert containers(engine, region) == {}
