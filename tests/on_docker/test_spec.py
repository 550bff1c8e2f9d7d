"""The Docker and Swarm spec, checked without an engine: what it accepts, what it refuses
(naming the field), and the Engine API bodies both providers make of it."""

from __future__ import annotations

from typing import Any

import pytest

from treadle import __version__
from treadle.errors import InputError
from treadle.naming import Cluster, ServerGroupName
from treadle.providers.base import NewServerGroup, server_group_labels
from treadle.providers.docker.containers import container_config
from treadle.providers.engine import fields, spec
from treadle.providers.swarm.services import service_spec

SECOND = 10**9


def workload(**fields: Any) -> spec.Workload:
    return spec.parse(fields, "web:1")


def test_a_full_spec_in_engine_units() -> None:
    w = workload(
        image="ignored:0",
        command="httpd -f -p '8080'",
        environment={"LOG": "debug", "PORT": 8080},
        ports=[
            80,
            "8080/udp",
            "9000:8080",
            "127.0.0.1::8081",
            {"target": 53, "protocol": "udp", "mode": "host"},
        ],
        healthcheck={
            "test": "wget -qO- http://127.0.0.1/",
            "interval": "1m30s",
            "timeout": "500ms",
            "retries": 2,
            "start_period": 2,
        },
        labels=["team=web"],
        deploy={"resources": {"limits": {"cpus": "0.5", "memory": "256M"}}},
        stop_grace_period="1.5s",
    )
    assert w.image == "web:1", "--image wins over the spec's image"
    assert w.command == ["httpd", "-f", "-p", "8080"]
    assert w.environment == ("LOG=debug", "PORT=8080")
    assert w.ports == (
        fields.Port(80),
        fields.Port(8080, "udp"),
        fields.Port(8080, published=9000),
        fields.Port(8081, host_ip="127.0.0.1"),
        fields.Port(53, "udp", mode="host"),
    )
    assert w.healthcheck == {
        "Test": ["CMD-SHELL", "wget -qO- http://127.0.0.1/"],
        "Interval": 90 * SECOND,
        "Timeout": SECOND // 2,
        "Retries": 2,
        "StartPeriod": 2 * SECOND,
    }
    assert w.labels == {"team": "web"}
    assert (w.nano_cpus, w.memory, w.stop_grace) == (SECOND // 2, 256 * 2**20, 3 * SECOND // 2)


@pytest.mark.parametrize(
    "text, bytes_",
    [
        (1024, 1024),
        ("512k", 512 * 1024),
        ("256m", 256 * 2**20),
        ("1g", 2**30),
        ("1.5GiB", 3 * 2**29),
        ("100b", 100),
    ],
)
def test_memory_sizes_count_like_docker(text: Any, bytes_: int) -> None:
    assert workload(mem_limit=text).memory == bytes_


def test_environment_as_a_list_and_a_disabled_health_check() -> None:
    w = workload(environment=["A=1", "B=x=y", "C="], healthcheck={"disable": True})
    assert w.environment == ("A=1", "B=x=y", "C=")
    assert w.healthcheck == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"replicas": 2}, "replicas: not a Compose field that treadle applies on docker"),
        ({"build": "."}, "build: treadle deploys an image (--image)"),
        ({"depends_on": ["db"]}, "depends_on: treadle deploys one service"),
        ({"secrets": ["token"]}, "secrets: Swarm's only"),
        ({"image": 3}, "image must be a string"),
        ({"command": [1]}, "command must be a string or a list of strings"),
        ({"command": "sh -c 'x"}, 'command "sh -c \'x" cannot be split'),
        ({"environment": {"DEBUG": True}}, "environment.DEBUG must be a string or a number"),
        ({"environment": ["DEBUG"]}, "environment[0] must be KEY=VALUE"),
        ({"environment": "A=1"}, "environment must be a map or a list"),
        (
            {"labels": {"treadle.cluster": "x"}},
            "labels treadle.cluster: the treadle.* labels are treadle's own",
        ),
        ({"ports": "80"}, "ports must be a list"),
        ({"ports": ["8000-8010"]}, "ports[0] target must be a port number"),
        ({"ports": [70000]}, "ports[0] target must be a port number"),
        ({"ports": ["80/icmp"]}, "ports[0] protocol must be one of tcp, udp, sctp"),
        (
            {"ports": [{"published": 80}]},
            "ports[0] takes target, published, host_ip, protocol, mode and needs target",
        ),
        ({"ports": [{"target": 80, "mode": "global"}]}, "ports[0] mode must be ingress or host"),
        (
            {"healthcheck": {"test": "true", "interval": "fast"}},
            "healthcheck.interval must be a duration",
        ),
        (
            {"healthcheck": {"test": "true", "interval": "0s"}},
            "healthcheck.interval must be 1ms or more",
        ),
        (
            {"healthcheck": {"test": ["curl", "x"]}},
            "healthcheck.test must be a shell command string or a list",
        ),
        (
            {"healthcheck": {"test": "true", "retries": 0}},
            "healthcheck.retries must be a whole number",
        ),
        ({"healthcheck": {"test": "true", "every": "1s"}}, "unknown healthcheck field(s) every"),
        ({"cpus": 0}, "cpus must be a number of CPUs above 0"),
        ({"mem_limit": "lots"}, "memory limit must be bytes or a size"),
        (
            {"cpus": 1, "deploy": {"resources": {"limits": {"cpus": 1}}}},
            "give cpus or deploy.resources.limits.cpus",
        ),
        ({"deploy": {"update_config": {}}}, "deploy.update_config: not a Compose field"),
        ({"deploy": {"mode": "global"}}, "deploy.mode: treadle sizes a server group itself"),
        ({"stop_grace_period": "soon"}, "stop_grace_period must be a duration"),
    ],
)
def test_a_bad_spec_names_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as refused:
        workload(**fields)
    assert str(refused.value).startswith("spec: ")
    assert message in str(refused.value)


def new_group(region: str = "eu-west", spec_: dict[str, Any] | None = None) -> NewServerGroup:
    name = ServerGroupName(Cluster("web", "prod"), 3)
    return NewServerGroup(
        name,
        region,
        "web:1",
        2,
        spec_,
        server_group_labels(name, __version__, "2026-01-01T00:00:00.000Z"),
    )


def test_regions_are_labels_and_name_prefixes() -> None:
    assert spec.check_region("eu-west") == "eu-west"
    for bad in ("", "EU", "eu_west", "eu--west", "-eu", "eu west"):
        with pytest.raises(InputError):
            spec.check_region(bad)
    assert spec.resource_name(spec.DEFAULT_REGION, "web-prod-v003") == "web-prod-v003"
    assert spec.resource_name("eu-west", "web-prod-v003") == "eu-west_web-prod-v003"
    with pytest.raises(InputError, match="too long"):
        spec.new_resource_name("a" * 30, "web-" + "x" * 30 + "-v000")


def test_container_config_publishes_on_loopback_and_restarts() -> None:
    w = workload(ports=["80", "9000:8080", "0.0.0.0::53/udp"], cpus=2, mem_limit="1g")
    labels = spec.group_labels(new_group(), w.labels)
    config = container_config(w, labels)
    assert (
        labels[spec.LABEL_REGION] == "eu-west"
        and labels[spec.LABEL_SERVER_GROUP] == "web-prod-v003"
    )
    assert config["Labels"]["treadle.cluster"] == "web-prod"
    assert config["ExposedPorts"] == {"80/tcp": {}, "8080/tcp": {}, "53/udp": {}}
    assert config["HostConfig"] == {
        "PortBindings": {
            "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
            "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "9000"}],
            "53/udp": [{"HostIp": "0.0.0.0", "HostPort": ""}],
        },
        "RestartPolicy": {"Name": "unless-stopped"},
        "NanoCpus": 2 * SECOND,
        "Memory": 2**30,
    }
    assert "Cmd" not in config and "Healthcheck" not in config, "the image's own stay"


def test_service_spec_keeps_the_image_entrypoint_and_publishes_through_swarm() -> None:
    w = workload(
        command=["httpd", "-f"],
        ports=["80", {"target": 53, "protocol": "udp", "published": 5353, "mode": "host"}],
        stop_grace_period="2s",
    )
    body = service_spec(w, "eu-west_web-prod-v003", {"a": "b"}, 2)
    container = body["TaskTemplate"]["ContainerSpec"]
    assert container["Args"] == ["httpd", "-f"] and "Command" not in container
    assert container["StopGracePeriod"] == 2 * SECOND
    assert body["Mode"] == {"Replicated": {"Replicas": 2}}
    assert body["EndpointSpec"]["Ports"] == [
        {"Protocol": "tcp", "TargetPort": 80, "PublishMode": "ingress"},
        {"Protocol": "udp", "TargetPort": 53, "PublishMode": "host", "PublishedPort": 5353},
    ]
    with pytest.raises(InputError, match=r"ports\[0\]: Swarm publishes a port on every address"):
        service_spec(workload(ports=["127.0.0.1::80"]), "x", {}, 1)


def test_endpoints_read_like_addresses() -> None:
    assert spec.endpoint("127.0.0.1", 49153, "tcp") == "127.0.0.1:49153"
    assert spec.endpoint("0.0.0.0", 80, "udp") == "127.0.0.1:80/udp"
    assert spec.endpoint("::1", 80, "tcp") == "[::1]:80"
