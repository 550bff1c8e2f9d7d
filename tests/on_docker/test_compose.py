"""Compose services on a real Docker engine: each field that applies is seen on the
containers the engine made (and on the ones a resize adds, copied from the definition);
a field that cannot apply, or a missing external network, is one line, exit 2, and
nothing is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerish import IMAGE, treadle_on_engine
from helpers import Outcome

pytestmark = pytest.mark.docker

SECOND = 10**9


def write(tmp_path: Path, services: dict[str, Any], **top: Any) -> Path:
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump({"services": services, **top}))
    return path


def deploy(region: str, path: Path, *args: str, service: str = "web", **env: str) -> Outcome:
    return treadle_on_engine(
        "deploy", "--provider", "docker", "--app", "web", "--region", region, "--image", IMAGE,
        "--spec", str(path), "--service", service, "--timeout", "60s", *args,
        env={"PREFIX": region, **env},
    )  # fmt: skip


def made(engine: Any, region: str) -> dict[str, list[str]]:
    """Everything in the engine with the region's label."""
    filters = {"label": [f"treadle.region={region}"]}
    return {
        "containers": [c["Names"][0] for c in engine.containers(all=True, filters=filters)],
        "networks": [n["Name"] for n in engine.networks(filters=filters)],
        "volumes": [
            v["Name"] for v in (engine.volumes(filters=filters) or {}).get("Volumes") or []
        ],
    }


def test_every_field_that_applies_reaches_the_containers(
    engine: Any, region: str, tmp_path: Path
) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "web.env").write_text("FROM_FILE=1\nSHARED=file\n")
    web = {
        "image": "ignored:0",
        "entrypoint": ["sh", "-c"],
        "command": ["trap exit INT TERM; sleep 3600 & wait", "ignored-arg"],
        "env_file": "web.env",
        "environment": {"SHARED": "environment", "TAG": "${TAG:-untagged}"},
        "expose": ["9000"],
        "networks": {"front": {"aliases": ["web", "www"]}, "back": {"priority": 10}},
        "volumes": [
            "data:/data",
            "./conf:/conf:ro",
            {"type": "tmpfs", "target": "/scratch", "tmpfs": {"size": "1m"}},
        ],
        "labels": {"team": "web"},
        "user": "0:0",
        "working_dir": "/tmp",
        "init": True,
        "read_only": True,
        "cap_add": ["NET_ADMIN"],
        "cap_drop": ["MKNOD"],
        "extra_hosts": ["db.example:10.1.2.3"],
        "logging": {"driver": "json-file", "options": {"max-size": "1m"}},
        "ulimits": {"nofile": {"soft": 1024, "hard": 2048}},
        "stop_signal": "SIGINT",
        "stop_grace_period": "2s",
        "restart": "on-failure:3",
        "deploy": {
            "resources": {
                "limits": {"cpus": "0.5", "memory": "64M", "pids": 100},
                "reservations": {"memory": "32M"},
            }
        },
    }
    path = write(
        tmp_path,
        {"web": web},
        networks={"front": {"name": "${PREFIX}-front"}, "back": {"name": "${PREFIX}-back"}},
        volumes={"data": {"name": "${PREFIX}-data", "labels": {"kept": "yes"}}},
    )
    deployed = deploy(region, path, "--instances", "1")
    assert deployed.code == 0, deployed
    resized = treadle_on_engine(
        "resize", "--region", region, "--server-group", "web-v000", "--instances", "2"
    )
    assert resized.code == 0, resized
    for n in (1, 2):  # made from the spec, then copied from the definition container
        c = engine.inspect_container(f"{region}_web-v000-{n}")
        config, host = c["Config"], c["HostConfig"]
        assert (config["Entrypoint"], config["Cmd"]) == (
            ["sh", "-c"],
            ["trap exit INT TERM; sleep 3600 & wait", "ignored-arg"],
        )
        assert {"FROM_FILE=1", "SHARED=environment", "TAG=untagged"} <= set(config["Env"])
        assert "9000/tcp" in config["ExposedPorts"]
        assert config["Labels"]["team"] == "web"
        assert (config["User"], config["WorkingDir"], config["StopSignal"]) == (
            "0:0",
            "/tmp",
            "SIGINT",
        )
        assert config["StopTimeout"] == 2
        assert (host["Init"], host["ReadonlyRootfs"]) == (True, True)
        assert (host["CapAdd"], host["CapDrop"]) == (["NET_ADMIN"], ["MKNOD"])
        assert host["ExtraHosts"] == ["db.example:10.1.2.3"]
        assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "1m"}}
        assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert (host["NanoCpus"], host["Memory"], host["PidsLimit"]) == (SECOND // 2, 64 << 20, 100)
        assert host["MemoryReservation"] == 32 << 20
        assert host["Mounts"] == [
            {"Type": "volume", "Source": f"{region}-data", "Target": "/data"},
            {"Type": "bind", "Source": str(tmp_path / "conf"), "Target": "/conf", "ReadOnly": True},
            {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1 << 20}},
        ]
        networks = c["NetworkSettings"]["Networks"]
        assert host["NetworkMode"] == f"{region}-back", "the highest priority first"
        assert set(networks) == {f"{region}-front", f"{region}-back"}
        assert {"web", "www"} <= set(networks[f"{region}-front"]["Aliases"])
    volume = engine.inspect_volume(f"{region}-data")
    assert volume["Labels"]["kept"] == "yes" and volume["Labels"]["treadle.region"] == region
    assert engine.inspect_network(f"{region}-front")["Driver"] == "bridge"

    # Destroying the server group leaves what the file declared, for the next one.
    assert (
        treadle_on_engine(
            "destroy", "--region", region, "--server-group", "web-v000", "--force"
        ).code
        == 0
    )
    assert made(engine, region)["containers"] == []
    assert sorted(made(engine, region)["networks"]) == [f"{region}-back", f"{region}-front"]
    assert made(engine, region)["volumes"] == [f"{region}-data"]


@pytest.mark.parametrize(
    "web, top, message",
    [
        ({"build": "."}, {}, "spec: build: treadle deploys an image (--image)"),
        ({"depends_on": ["db"]}, {}, "spec: depends_on: treadle deploys one service"),
        (
            {"secrets": ["token"]},
            {"secrets": {"token": {"file": "x"}}},
            "spec: secrets: Swarm's only",
        ),
        (
            {"deploy": {"placement": {"constraints": ["node.role==manager"]}}},
            {},
            "spec: deploy.placement: Swarm's only",
        ),
        ({"deploy": {"replicas": 2}}, {}, "spec: deploy.replicas next to --instances"),
        ({"imag": "x"}, {}, "'imag' was unexpected"),
        (
            {"networks": ["outside"]},
            {"networks": {"outside": {"name": "${PREFIX}-nowhere", "external": True}}},
            "spec: networks -nowhere is external, and the Docker engine has none of that name",
        ),
    ],
)
def test_what_cannot_apply_is_one_line_and_nothing_is_made(
    engine: Any, region: str, tmp_path: Path, web: dict[str, Any], top: dict[str, Any], message: str
) -> None:
    network = {"networks": ["net"]} if "networks" not in web else {}
    top = {"networks": {"net": {"name": "${PREFIX}-net"}}, **top}
    path = write(tmp_path, {"web": {**network, **web}}, **top)
    outcome = deploy(region, path, "--instances", "1")
    assert outcome.code == 2, outcome
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message.replace("-nowhere", f"{region}-nowhere") in errors[0]
    assert made(engine, region) == {"containers": [], "networks": [], "volumes": []}


def test_run_job_joins_the_services_network(engine: Any, region: str, tmp_path: Path) -> None:
    """A job (a database migration, say) takes a Compose service too, and reaches what is
    on its network by alias."""
    path = write(
        tmp_path,
        {
            "db": {
                "command": [
                    "sh",
                    "-c",
                    "echo up > /tmp/index.html; trap exit TERM; httpd -f -p 5432 -h /tmp & wait",
                ],
                "networks": {"back": {"aliases": ["db"]}},
            },
            "migrate": {
                "command": ["sh", "-c", 'echo "TREADLE_OUTPUT db=$(wget -q -O - http://db:5432/)"'],
                "networks": ["back"],
            },
        },
        networks={"back": {"name": "${PREFIX}-back"}},
    )
    assert deploy(region, path, service="db").code == 0
    job = treadle_on_engine(
        "run-job", "--provider", "docker", "--image", IMAGE, "--job-id", region,
        "--spec", str(path), "--service", "migrate", "--timeout", "60s",
        env={"PREFIX": region},
    )  # fmt: skip
    assert job.code == 0, job
    assert job.result is not None and job.result["outputs"] == {"db": "up"}


def test_an_instance_its_restart_policy_leaves_stopped_fails_the_deploy_at_once(
    region: str, tmp_path: Path
) -> None:
    path = write(tmp_path, {"web": {"command": ["sh", "-c", "exit 3"], "restart": "no"}})
    deployed = deploy(region, path, "--timeout", "30s")
    assert deployed.code == 1, deployed
    assert (
        "web-v000 cannot become healthy: web-v000-1 exited with code 3, and its restart "
        "policy (no) does not start it again"
    ) in deployed.stderr.replace(f"{region}_", "")
