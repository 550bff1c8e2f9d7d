"""Compose services on a real single-node swarm: each field that applies is seen on the
service the swarm made; secrets and configs are made when missing and read by the
tasks; what cannot apply on Swarm is one line, exit 2, and nothing is made."""

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


def deploy(region: str, path: Path, *args: str, **env: str) -> Outcome:
    return treadle_on_engine(
        "deploy", "--provider", "swarm", "--app", "web", "--region", region, "--image", IMAGE,
        "--spec", str(path), "--service", "web", "--timeout", "60s", *args,
        env={"PREFIX": region, **env},
    )  # fmt: skip


def test_every_field_that_applies_reaches_the_service(
    swarm: Any, region: str, tmp_path: Path
) -> None:
    (tmp_path / "token.txt").write_text("s3cret\n")
    web = {
        "entrypoint": ["sh", "-c"],
        "command": [
            "grep -q s3cret /run/secrets/api-token && grep -q level=debug /etc/web.conf "
            "&& trap exit TERM && sleep 3600 & wait"
        ],
        "environment": {"TAG": "${TAG:-untagged}"},
        "networks": {"back": {"aliases": ["web"]}},
        "volumes": ["data:/data", {"type": "tmpfs", "target": "/scratch"}],
        "user": "0",
        "working_dir": "/tmp",
        "init": True,
        "read_only": True,
        "cap_add": ["NET_ADMIN"],
        "cap_drop": ["MKNOD"],
        "extra_hosts": {"db.example": "10.1.2.3"},
        "logging": {"driver": "json-file", "options": {"max-size": "1m"}},
        "ulimits": {"nproc": 512},
        "stop_signal": "SIGTERM",
        "stop_grace_period": "2s",
        "secrets": [{"source": "token", "target": "api-token", "mode": 0o400, "uid": "65534"}],
        "configs": [{"source": "conf", "target": "/etc/web.conf"}],
        "healthcheck": {"test": "test -f /run/secrets/api-token", "interval": "500ms"},
        "deploy": {
            "resources": {
                "limits": {"cpus": "0.5", "memory": "64M", "pids": 100},
                "reservations": {"cpus": "0.1", "memory": "16M"},
            },
            "restart_policy": {"condition": "on-failure", "delay": "1s", "max_attempts": 3},
            "placement": {
                "constraints": ["node.role==manager"],
                "preferences": [{"spread": "node.labels.zone"}],
                "max_replicas_per_node": 5,
            },
        },
    }
    path = write(
        tmp_path,
        {"web": web},
        networks={"back": {"name": "${PREFIX}-back"}},
        volumes={"data": {"name": "${PREFIX}-data"}},
        secrets={"token": {"name": "${PREFIX}-token", "file": "./token.txt"}},
        configs={"conf": {"name": "${PREFIX}-conf", "content": "level=debug\n"}},
    )
    deployed = deploy(region, path, "--instances", "2")
    assert deployed.code == 0, deployed
    service = swarm.inspect_service(f"{region}_web-v000")["Spec"]
    template = service["TaskTemplate"]
    container = template["ContainerSpec"]
    assert (container["Command"], container["Args"][0][:9]) == (["sh", "-c"], "grep -q s")
    assert "TAG=untagged" in container["Env"]
    assert (container["User"], container["Dir"], container["StopSignal"]) == (
        "0",
        "/tmp",
        "SIGTERM",
    )
    assert (container["Init"], container["ReadOnly"]) == (True, True)
    assert (container["CapabilityAdd"], container["CapabilityDrop"]) == (["NET_ADMIN"], ["MKNOD"])
    assert container["Hosts"] == ["10.1.2.3 db.example"]
    assert container["Ulimits"] == [{"Name": "nproc", "Soft": 512, "Hard": 512}]
    assert container["StopGracePeriod"] == 2 * SECOND
    assert [m["Type"] for m in container["Mounts"]] == ["volume", "tmpfs"]
    assert container["Mounts"][0]["Source"] == f"{region}-data"
    [secret] = container["Secrets"]
    assert secret["SecretName"] == f"{region}-token" and secret["SecretID"]
    assert secret["File"] == {"Name": "api-token", "UID": "65534", "GID": "0", "Mode": 0o400}
    [config] = container["Configs"]
    assert config["ConfigName"] == f"{region}-conf" and config["File"]["Name"] == "/etc/web.conf"
    assert template["Resources"] == {
        "Limits": {"NanoCPUs": SECOND // 2, "MemoryBytes": 64 << 20, "Pids": 100},
        "Reservations": {"NanoCPUs": SECOND // 10, "MemoryBytes": 16 << 20},
    }
    assert template["RestartPolicy"] == {
        "Condition": "on-failure",
        "Delay": SECOND,
        "MaxAttempts": 3,
    }
    assert template["Placement"]["Constraints"] == ["node.role==manager"]
    assert template["Placement"]["MaxReplicas"] == 5
    assert template["LogDriver"] == {"Name": "json-file", "Options": {"max-size": "1m"}}
    network = swarm.inspect_network(f"{region}-back")
    assert (network["Driver"], network["Attachable"]) == ("overlay", True)
    assert template["Networks"] == [{"Target": network["Id"], "Aliases": ["web"]}]
    # Made once, kept for the next server group, which uses them as they are.
    again = deploy(region, path, "--strategy", "red-black")
    assert again.code == 0, again
    assert len(swarm.secrets(filters={"name": f"{region}-token"})) == 1


@pytest.mark.parametrize(
    "web, message",
    [
        ({"restart": "always"}, "spec: restart: Docker's only: on Swarm, deploy.restart_policy"),
        ({"deploy": {"mode": "global"}}, "spec: deploy.mode: treadle sizes a server group itself"),
        ({"secrets": ["missing"]}, "spec: secrets.missing: the file"),
        (
            {"deploy": {"endpoint_mode": "dnsrr"}, "ports": ["80"]},
            "spec: deploy.endpoint_mode dnsrr publishes no port through the routing mesh",
        ),
    ],
)
def test_what_cannot_apply_on_swarm_is_one_line_and_nothing_is_made(
    swarm: Any, region: str, tmp_path: Path, web: dict[str, Any], message: str
) -> None:
    path = write(
        tmp_path,
        {"web": {"networks": ["net"], **web}},
        networks={"net": {"name": "${PREFIX}-net"}},
        secrets={"missing": {"file": "./missing.txt"}},
    )
    outcome = deploy(region, path)
    assert outcome.code == 2, outcome
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], errors
    label = {"label": [f"treadle.region={region}"]}
    assert swarm.services(filters=label) == [] and swarm.networks(filters=label) == []
