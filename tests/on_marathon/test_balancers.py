"""marathon-lb in front of a cluster on Marathon: one backend across its server groups,
the new one taking the traffic as it becomes healthy, a rollback handing it back.

`backend` below is marathon-lb's rule for apps of one HAPROXY_DEPLOYMENT_GROUP as its
documentation and source describe it, applied to what the emulator answers; the emulator
refuses a service port another app holds, as Marathon does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from emulator import MarathonEmulator
from helpers import Outcome, treadle

FRONTEND, ALTERNATE = 10000, 10001
SPEC = {
    "cpus": 0.1,
    "mem": 64,
    "container": {
        "type": "DOCKER",
        "docker": {"network": "BRIDGE"},
        "portMappings": [{"containerPort": 8080, "hostPort": 0, "servicePort": FRONTEND}],
    },
    "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0}],
    "labels": {
        "HAPROXY_GROUP": "external",
        "HAPROXY_0_VHOST": "web.example.com",
        "HAPROXY_DEPLOYMENT_GROUP": "web-prod",
        "HAPROXY_DEPLOYMENT_ALT_PORT": str(ALTERNATE),
    },
}


def backend(marathon: MarathonEmulator, names: list[str]) -> dict[str, list[str]]:
    """server group -> its tasks marathon-lb sends requests to. Of the apps of one
    deployment group, the one scaled last (versionInfo.lastScalingAt, as
    HAPROXY_DEPLOYMENT_NEW_INSTANCES is set) is the new one; as many of the other's tasks
    as the new one has healthy beyond HAPROXY_DEPLOYMENT_TARGET_INSTANCES are drained."""
    apps = [a for a in (marathon.app(f"/{n}") for n in names) if a is not None]
    apps.sort(key=lambda a: a["versionInfo"]["lastScalingAt"])
    routed = {a["id"].lstrip("/"): [t["id"] for t in a["tasks"]] for a in apps}
    if len(apps) == 2:
        old, new = apps
        assert "HAPROXY_DEPLOYMENT_NEW_INSTANCES" in new["labels"]
        target = int(new["labels"]["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"])
        # Without health checks, every instance asked for counts as healthy.
        healthy = new["tasksHealthy"] if new.get("healthChecks") else new["instances"]
        drainable = max(0, healthy + old["instances"] - target)
        drained = sorted(t["id"] for t in old["tasks"])[: min(healthy, drainable)]
        routed[old["id"].lstrip("/")] = [
            t for t in routed[old["id"].lstrip("/")] if t not in drained
        ]
    return routed


def service_port(marathon: MarathonEmulator, name: str) -> int:
    app = marathon.app(f"/{name}")
    assert app is not None
    return int(app["container"]["portMappings"][0]["servicePort"])


def run(marathon: MarathonEmulator, *args: str) -> Outcome:
    return treadle(*args, "--marathon-url", marathon.url)


def deploy(marathon: MarathonEmulator, tmp_path: Path, spec: dict[str, Any], *args: str) -> Outcome:
    path = tmp_path / "app.json"
    path.write_text(json.dumps(spec))
    return run(
        marathon, "deploy", "--cluster", "web-prod", "--image", "web:1", "--spec", str(path), *args
    )


def test_red_black_rollback_and_canary_behind_marathon_lb(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    first = deploy(marathon, tmp_path, SPEC, "--instances", "2")
    assert first.code == 0, first
    v000 = marathon.app("/web-prod-v000")
    assert v000 is not None
    assert service_port(marathon, "web-prod-v000") == FRONTEND
    assert v000["labels"]["HAPROXY_0_PORT"] == str(FRONTEND)
    assert v000["labels"]["HAPROXY_DEPLOYMENT_COLOUR"] == "blue"
    assert v000["labels"]["HAPROXY_DEPLOYMENT_TARGET_INSTANCES"] == "2"
    assert v000["labels"]["HAPROXY_DEPLOYMENT_STARTED_AT"] == v000["labels"]["treadle.created-at"]

    # The next group serves on the other port while both run; the old one is out of
    # marathon-lb's rotation once the new one is healthy, and --drain is waited for then.
    second = deploy(marathon, tmp_path, SPEC, "--strategy", "red-black", "--drain", "0.1s")
    assert second.code == 0, second
    assert service_port(marathon, "web-prod-v001") == ALTERNATE
    assert marathon.app("/web-prod-v001")["labels"]["HAPROXY_0_PORT"] == str(FRONTEND)  # type: ignore[index]
    assert "web-prod-v000 is out of web-prod's load balancing: draining 0.1s" in second.stderr
    groups = ["web-prod-v000", "web-prod-v001"]
    assert {k: len(v) for k, v in backend(marathon, groups).items()} == {
        "web-prod-v000": 0,
        "web-prod-v001": 2,
    }

    # A rollback scales the old group back, which makes it marathon-lb's new one.
    rolled = run(marathon, "rollback", "--cluster", "web-prod", "--drain", "0s")
    assert rolled.code == 0, rolled
    assert {k: len(v) for k, v in backend(marathon, groups).items()} == {
        "web-prod-v000": 2,
        "web-prod-v001": 0,
    }

    # Both ports held: a third group could not be made; refused before any change.
    before = len(marathon.app_changes())
    third = deploy(marathon, tmp_path, SPEC, "--strategy", "red-black")
    assert third.code == 3, third
    assert "destroy web-prod-v000 first, or deploy red/black with --max-remaining 0" in third.stderr
    assert len(marathon.app_changes()) == before

    gone = run(marathon, "destroy", "--server-group", "web-prod-v001")
    assert gone.code == 0, gone

    # A canary takes its share: as many of the old group's tasks leave the rotation as it
    # has healthy ones, so the cluster serves at its size throughout.
    canary = deploy(marathon, tmp_path, SPEC, "--strategy", "canary", "--canary-instances", "1")
    assert canary.code == 0, canary
    # The next name after the newest that exists.
    assert service_port(marathon, "web-prod-v001") == ALTERNATE
    assert {k: len(v) for k, v in backend(marathon, groups).items()} == {
        "web-prod-v000": 1,
        "web-prod-v001": 1,
    }
    promoted = run(marathon, "promote", "--cluster", "web-prod", "--drain", "0s")
    assert promoted.code == 0, promoted
    assert {k: len(v) for k, v in backend(marathon, groups).items()} == {
        "web-prod-v000": 0,
        "web-prod-v001": 2,
    }


@pytest.mark.parametrize(
    ("labels", "says"),
    [
        (
            {"HAPROXY_DEPLOYMENT_GROUP": "web-prod"},
            "spec: label HAPROXY_DEPLOYMENT_GROUP needs HAPROXY_DEPLOYMENT_ALT_PORT",
        ),
        (
            {"HAPROXY_DEPLOYMENT_GROUP": "web-prod", "HAPROXY_DEPLOYMENT_ALT_PORT": "10000"},
            "spec: label HAPROXY_DEPLOYMENT_ALT_PORT must differ from the service port 10000",
        ),
        (
            {"HAPROXY_DEPLOYMENT_GROUP": "web-prod", "HAPROXY_DEPLOYMENT_ALT_PORT": "http"},
            "spec: label HAPROXY_DEPLOYMENT_ALT_PORT must be a port between 1 and 65535",
        ),
    ],
)
def test_a_deployment_group_marathon_lb_could_not_serve_is_refused(
    marathon: MarathonEmulator, tmp_path: Path, labels: dict[str, str], says: str
) -> None:
    outcome = deploy(marathon, tmp_path, {**SPEC, "labels": labels})
    assert outcome.code == 2, outcome
    assert says in outcome.stderr
    assert marathon.app_changes() == []


def test_the_emulator_refuses_a_service_port_another_app_holds(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    """What makes the alternate port necessary, as Marathon words it."""
    plain = {**SPEC, "labels": {}}
    assert deploy(marathon, tmp_path, plain).code == 0
    path = tmp_path / "again.json"
    path.write_text(json.dumps(plain))
    again = run(
        marathon,
        "deploy",
        "--cluster",
        "web-staging",
        "--image",
        "web:1",
        "--spec",
        str(path),
    )
    assert again.code != 0
    assert (
        f"Requested service port {FRONTEND} conflicts with a service port in app /web-prod-v000"
        in again.stderr
    )


def test_traefik_labels_ride_on_every_server_group(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    """Traefik serves the healthy running tasks of every app that names the same backend
    as one: the label must reach each new group unchanged, a clone's too."""
    traefik = {
        "traefik.enable": "true",
        "traefik.backend": "web-prod",
        "traefik.frontend.rule": "Host:web.example.com",
    }
    # Traefik routes to each task's own port: no fixed service port is needed.
    container = {**SPEC["container"], "portMappings": [{"containerPort": 8080, "hostPort": 0}]}  # type: ignore[dict-item]
    spec = {**SPEC, "container": container, "labels": traefik}
    assert deploy(marathon, tmp_path, spec).code == 0
    assert deploy(marathon, tmp_path, spec, "--strategy", "red-black").code == 0
    cloned = run(
        marathon, "clone", "--cluster", "web-prod", "--target", "newest", "--strategy", "red-black"
    )
    assert cloned.code == 0, cloned
    for name in ("web-prod-v000", "web-prod-v001", "web-prod-v002"):
        app = marathon.app(f"/{name}")
        assert app is not None
        assert traefik.items() <= app["labels"].items(), name
