"""What only the Swarm provider does, on a real single-node swarm: a service per server
group, its size kept in a label while disabled, published ports as endpoints, failing
tasks seen before the timeout."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from dockerish import deploy_on, treadle_on_engine
from helpers import Outcome

pytestmark = pytest.mark.docker

SERVED = {
    "healthcheck": {
        "test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"],
        "interval": "500ms",
        "retries": 3,
    },
}


def deploy(region: str, tmp_path: Path, spec: dict[str, Any] | None = None, *args: str) -> Outcome:
    return deploy_on("swarm", region, tmp_path, spec, *args)


def services(swarm: Any, region: str) -> dict[str, dict[str, Any]]:
    listed = swarm.services(filters={"label": [f"treadle.region={region}"]})
    return {s["Spec"]["Name"]: s for s in listed}


def test_host_mode_ports_answer_on_loopback_once_healthy(
    swarm: Any, region: str, tmp_path: Path
) -> None:
    deployed = deploy(
        region, tmp_path, {**SERVED, "ports": [{"target": 80, "mode": "host"}]}, "--instances", "2"
    )
    assert deployed.code == 0, deployed
    assert "web-prod-v000: 0/2 healthy, 2 running" in deployed.stderr, "the check is waited for"
    endpoints = deployed.result["endpoints"]  # type: ignore[index]
    assert len(endpoints) == 2 and all(e.startswith("127.0.0.1:") for e in endpoints)
    with httpx.Client(trust_env=False, timeout=5) as client:
        assert [client.get(f"http://{e}/").text for e in endpoints] == ["1\n", "1\n"]


def test_an_ingress_port_is_reported_on_the_node_address(
    swarm: Any, region: str, tmp_path: Path
) -> None:
    # Reported only: the routing mesh needs IPVS, which a sandboxed kernel may lack.
    deployed = deploy(region, tmp_path, {"ports": ["80"]})
    assert deployed.code == 0, deployed
    published = services(swarm, region)[f"{region}_web-prod-v000"]["Endpoint"]["Ports"][0][
        "PublishedPort"
    ]
    address = swarm.info()["Swarm"]["NodeAddr"]
    assert deployed.result["endpoints"] == [f"{address}:{published}"]  # type: ignore[index]


def test_a_disabled_service_runs_nothing_and_keeps_its_size_in_a_label(
    swarm: Any, region: str, tmp_path: Path
) -> None:
    assert deploy(region, tmp_path, None, "--instances", "2").code == 0
    service_id = services(swarm, region)[f"{region}_web-prod-v000"]["ID"]
    disabled = treadle_on_engine(
        "disable",
        "--provider",
        "swarm",
        "--region",
        region,
        "--server-group",
        "web-prod-v000",
        "--force",
    )
    assert disabled.code == 0, disabled
    service = services(swarm, region)[f"{region}_web-prod-v000"]
    assert service["Spec"]["Mode"] == {"Replicated": {"Replicas": 0}}
    assert service["Spec"]["Labels"]["treadle.disabled-instances"] == "2"
    assert not swarm.tasks(filters={"service": service_id, "desired-state": "running"})

    enabled = treadle_on_engine(
        "enable", "--provider", "swarm", "--region", region, "--server-group", "web-prod-v000"
    )
    assert enabled.code == 0, enabled
    service = services(swarm, region)[f"{region}_web-prod-v000"]
    assert service["ID"] == service_id and service["Spec"]["Mode"] == {
        "Replicated": {"Replicas": 2}
    }
    assert "treadle.disabled-instances" not in service["Spec"]["Labels"]
    assert "UpdateStatus" not in service, "scaling replaced no task"


def test_a_host_address_is_refused_before_anything_is_made(
    swarm: Any, region: str, tmp_path: Path
) -> None:
    deployed = deploy(region, tmp_path, {"ports": ["127.0.0.1::80"]})
    assert deployed.code == 2, deployed
    assert (
        "spec: ports[0]: Swarm publishes a port on every address of every node" in deployed.stderr
    )
    assert services(swarm, region) == {}


def test_failing_tasks_fail_the_deploy_before_its_timeout(
    swarm: Any, region: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    deployed = deploy(region, tmp_path, {"command": ["sh", "-c", "exit 3"]})
    assert deployed.code == 1, deployed
    assert time.monotonic() - started < 30, "Swarm restarts a failed task after 5s"
    assert (
        "web-prod-v000 cannot become healthy: 3 instances failed, the last one: failed: "
        "task: non-zero exit (3)"
    ) in deployed.stderr


# PID 1 without a TERM handler ignores SIGTERM: each container takes its whole grace.
IGNORES_SIGTERM = {"command": ["sleep", "3600"], "stop_grace_period": "4s"}


def running_containers(swarm: Any, region: str, name: str) -> list[str]:
    filters = {"label": [f"treadle.region={region}", f"treadle.server-group={name}"]}
    return [c["Id"] for c in swarm.containers(filters=filters)]


@pytest.mark.parametrize("stage", ["destroy", "disable"])
def test_destroy_and_disable_return_once_no_container_runs(
    swarm: Any, region: str, tmp_path: Path, stage: str
) -> None:
    assert deploy(region, tmp_path, IGNORES_SIGTERM, "--instances", "2").code == 0
    assert len(running_containers(swarm, region, "web-prod-v000")) == 2
    started = time.monotonic()
    outcome = treadle_on_engine(
        stage,
        "--provider",
        "swarm",
        "--region",
        region,
        "--server-group",
        "web-prod-v000",
        "--force",
        "--timeout",
        "60s",
    )
    took = time.monotonic() - started
    assert outcome.code == 0, outcome
    assert running_containers(swarm, region, "web-prod-v000") == [], f"{stage} left them running"
    assert took >= 4, f"returned after {took:.1f}s, before the 4s grace period ran out"


def test_destroy_gives_up_at_the_timeout_while_containers_stop(
    swarm: Any, region: str, tmp_path: Path
) -> None:
    slow = {**IGNORES_SIGTERM, "stop_grace_period": "30s"}
    assert deploy(region, tmp_path, slow).code == 0
    started = time.monotonic()
    outcome = treadle_on_engine(
        "destroy",
        "--provider",
        "swarm",
        "--region",
        region,
        "--server-group",
        "web-prod-v000",
        "--force",
        "--timeout",
        "3s",
    )
    assert outcome.code == 1, outcome
    assert time.monotonic() - started < 3 + 5
    assert "web-prod-v000: 1 container stopping" in outcome.stderr
