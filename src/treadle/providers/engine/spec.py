"""What the Docker and Swarm providers share, without any call to an engine: regions,
resource names and labels, and the spec: one Compose service (from a Compose file, read
by treadle.providers.engine.compose, or a file holding one service's mapping), checked
into a Workload in the Engine API's shapes.

    image: web:1.4.2               # --image wins
    command: ["httpd", "-f"]       # or a string, split like a shell would
    environment: {LOG: debug}      # or ["LOG=debug"]; env_file: [web.env]
    ports: ["8080", "127.0.0.1::9090", "5353/udp", {target: 80, published: 8000, mode: host}]
    networks: {backend: {aliases: [web]}}
    volumes: ["data:/var/lib/web", "./conf:/etc/web:ro", {type: tmpfs, target: /tmp}]
    healthcheck: {test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/"], interval: 1s}
    deploy: {resources: {limits: {cpus: "0.5", memory: 256M}}}
    secrets: [token]               # Swarm

Each provider applies the fields that mean something on it and refuses the others by
name (APPLIES, NOT_HERE, REASONS), before anything is made.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from treadle.errors import InputError
from treadle.naming import MAX_NAME, try_parse_server_group
from treadle.providers.base import (
    LABEL_CLUSTER,
    LABEL_CREATED_AT,
    LABEL_DISABLED_INSTANCES,
    NewServerGroup,
    ServerGroup,
)
from treadle.providers.engine import attachments, fields
from treadle.providers.engine.attachments import Declared, Network
from treadle.providers.engine.compose import DECLARED, read_env_files
from treadle.providers.engine.fields import Port
from treadle.providers.engine.limits import limits, reservations

DEFAULT_REGION = "local"
LOOPBACK = "127.0.0.1"
LABEL_REGION = "treadle.region"
LABEL_SERVER_GROUP = "treadle.server-group"
# Neither a region nor a server group name can hold it, so prefixed names never collide.
REGION_SEPARATOR = "_"
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")


def check_region(region: str) -> str:
    if not _REGION.fullmatch(region or ""):
        raise InputError(
            f"invalid region {region!r}: a Docker or Swarm region is a label of lower-case "
            f"letters, digits and single hyphens (for example {DEFAULT_REGION} or eu-west)"
        )
    return region


def resource_name(region: str, server_group: str) -> str:
    """The container or service name: the server group's own name in the default region,
    `<region>_<server group>` in any other, so that regions never share a name."""
    return server_group if region == DEFAULT_REGION else region + REGION_SEPARATOR + server_group


def new_resource_name(region: str, server_group: str) -> str:
    """The name for a new server group, refused when an engine would reject it."""
    name = resource_name(region, server_group)
    if len(name) > MAX_NAME:
        raise InputError(
            f"{name!r} is too long for Docker ({len(name)} characters, at most {MAX_NAME}): "
            "use a shorter region or cluster name"
        )
    return name


def group_labels(new: NewServerGroup, own: Mapping[str, str]) -> dict[str, str]:
    """The spec's labels, then treadle's, which say where the resource came from."""
    return {
        **own,
        **new.labels,
        LABEL_REGION: new.region,
        LABEL_SERVER_GROUP: new.name.name,
    }


def endpoint(address: str, port: int, protocol: str) -> str:
    """`127.0.0.1:49153`, `[::1]:8080`, `127.0.0.1:5353/udp`."""
    # Published on every address: the loopback one is among them.
    host = LOOPBACK if address in ("", "0.0.0.0", "::") else address
    text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return text if protocol == "tcp" else f"{text}/{protocol}"


def region_filter(
    region: str, server_group: str | None = None, cluster: str | None = None
) -> dict[str, list[str]]:
    """An engine list filter: everything treadle made in a region, one cluster's server
    groups, or one server group."""
    labels = [f"{LABEL_REGION}={region}"]
    if server_group:
        labels.append(f"{LABEL_SERVER_GROUP}={server_group}")
    if cluster:
        labels.append(f"{LABEL_CLUSTER}={cluster}")
    return {"label": labels}


def to_server_group(
    labels: Mapping[str, str],
    *,
    image: str | None,
    instances: int,
    id: str,
    endpoints: tuple[str, ...] = (),
) -> ServerGroup | None:
    """The server group that carries these labels (None for what treadle did not name).
    A disabled one is marked by LABEL_DISABLED_INSTANCES."""
    name = labels.get(LABEL_SERVER_GROUP, "")
    if try_parse_server_group(name) is None:
        return None
    return ServerGroup(
        name=name,
        region=labels.get(LABEL_REGION, DEFAULT_REGION),
        image=image,
        instances=instances,
        enabled=LABEL_DISABLED_INSTANCES not in labels,
        created_at=labels.get(LABEL_CREATED_AT),
        labels=dict(labels),
        id=id,
        endpoints=endpoints,
    )


# --- the spec ------------------------------------------------------------------------------

DOCKER, SWARM = "docker", "swarm"
# The service fields treadle applies on both providers, and those it applies on one only.
FIELDS = (
    "image",
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "ports",
    "expose",
    "networks",
    "volumes",
    "tmpfs",
    "healthcheck",
    "labels",
    "user",
    "working_dir",
    "init",
    "read_only",
    "cap_add",
    "cap_drop",
    "extra_hosts",
    "logging",
    "ulimits",
    "stop_signal",
    "stop_grace_period",
    "cpus",
    "mem_limit",
    "mem_reservation",
    "pids_limit",
    "deploy",
)
# endpoint_mode: Swarm's (dnsrr: its names answer with the tasks' own addresses, as a
# container's aliases always do on Docker, where it changes nothing).
DEPLOY_FIELDS = ("resources", "replicas", "mode", "endpoint_mode")
APPLIES = {
    "restart": DOCKER,
    "secrets": SWARM,
    "configs": SWARM,
    "deploy.placement": SWARM,
    "deploy.restart_policy": SWARM,
}
# Why a field of APPLIES is refused on the other provider.
NOT_HERE = {
    "restart": "Docker's only: on Swarm, deploy.restart_policy says when a task restarts",
    "secrets": "Swarm's only (--provider swarm): a Docker engine keeps no secrets; mount a "
    "file with volumes instead",
    "configs": "Swarm's only (--provider swarm): mount a file with volumes instead",
    "deploy.placement": "Swarm's only (--provider swarm): a Docker engine is one node",
    "deploy.restart_policy": "Swarm's only: on Docker, restart says when a container restarts",
}
# Why treadle refuses a Compose field on every provider.
REASONS = {
    "build": "treadle deploys an image (--image): build it in an earlier step",
    "depends_on": "treadle deploys one service: deploy what it depends on first, as a "
    "cluster of its own, and reach it by an alias on a shared network",
    "links": "reach other services by an alias on a shared network (networks.NAME.aliases)",
    "container_name": "treadle names containers after the server group",
    "scale": "the size is --instances",
    "extends": "treadle reads one service as written: merge what it extends into it",
    "profiles": "treadle deploys the service that --service names",
    "deploy.mode": "treadle sizes a server group itself (--instances): only replicated applies",
}


@dataclass(frozen=True)
class Workload:
    """A checked spec, in the Engine API's own shapes and units (nanoseconds, bytes,
    nano-CPUs); each provider makes its create body of it."""

    image: str
    command: list[str] | None
    environment: tuple[str, ...]
    ports: tuple[Port, ...]
    # The Engine API's HealthConfig: Test, Interval, Timeout, Retries, StartPeriod.
    healthcheck: dict[str, Any] | None
    labels: Mapping[str, str]
    nano_cpus: int | None
    memory: int | None
    stop_grace: int | None
    # Replaces the image's ENTRYPOINT (the spec's entrypoint, or run-job's --cmd shell).
    entrypoint: list[str] | None = None
    expose: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()
    # The Engine API's Mounts, the same for a container and a Swarm task.
    mounts: tuple[dict[str, Any], ...] = ()
    user: str | None = None
    working_dir: str | None = None
    init: bool | None = None
    read_only: bool | None = None
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    extra_hosts: tuple[tuple[str, str], ...] = ()
    # (driver, options); the driver "" is the engine's default.
    logging: tuple[str, Mapping[str, str]] | None = None
    ulimits: tuple[dict[str, Any], ...] = ()
    stop_signal: str | None = None
    pids: int | None = None
    memory_reservation: int | None = None
    cpu_reservation: int | None = None
    # Docker's RestartPolicy (restart), Swarm's (deploy.restart_policy) and Placement.
    restart: dict[str, Any] | None = None
    restart_policy: dict[str, Any] | None = None
    placement: dict[str, Any] | None = None
    # Swarm's SecretReferences and ConfigReferences, by name (ids are found at create).
    secrets: tuple[dict[str, Any], ...] = ()
    configs: tuple[dict[str, Any], ...] = ()
    endpoint_mode: str | None = None
    # What must exist before it runs, made when missing and never removed by treadle.
    declared: Declared = field(default_factory=Declared)


def parse(spec: Mapping[str, Any] | None, image: str, provider: str = DOCKER) -> Workload:
    """A spec's content, checked for `provider`; InputError names the field to fix."""
    spec = dict(spec or {})
    given = {k: v for k, v in spec.items() if not str(k).startswith("x-")}
    deploy = fields.mapping(given.get("deploy"), "deploy")
    check_fields(set(given), deploy, provider)
    if "image" in spec and not isinstance(spec["image"], str):
        raise InputError(f"spec: image must be a string, not {spec['image']!r}")
    if "env_file" in given:  # a service's own file: paths from the working directory
        files = read_env_files(given["env_file"], Path.cwd(), os.environ, "spec")
        given["environment"] = {**files, **fields.pairs(given.get("environment"), "environment")}
    declared_in = fields.mapping(spec.get(DECLARED), DECLARED)
    declared = Declared()
    resources = fields.mapping(deploy.get("resources"), "deploy.resources")
    nano_cpus, memory, pids = limits(
        given, fields.mapping(resources.get("limits"), "deploy.resources.limits")
    )
    reserved = reservations(given, resources, provider)
    logging = given.get("logging")
    return Workload(
        image=image,
        command=fields.command(given["command"]) if "command" in given else None,
        entrypoint=fields.command(given["entrypoint"], "entrypoint")
        if "entrypoint" in given
        else None,
        environment=tuple(
            f"{k}={v}" for k, v in fields.pairs(given.get("environment"), "environment").items()
        ),
        ports=tuple(
            fields.port(p, f"ports[{i}]")
            for i, p in enumerate(fields.listed(given.get("ports"), "ports"))
        ),
        expose=tuple(
            fields.expose(p, f"expose[{i}]")
            for i, p in enumerate(fields.listed(given.get("expose"), "expose"))
        ),
        healthcheck=fields.healthcheck(given["healthcheck"]) if "healthcheck" in given else None,
        labels=fields.labels(given.get("labels")),
        nano_cpus=nano_cpus,
        memory=memory,
        pids=pids,
        memory_reservation=reserved[1],
        cpu_reservation=reserved[0],
        stop_grace=fields.duration(given["stop_grace_period"], "stop_grace_period")
        if "stop_grace_period" in given
        else None,
        networks=attachments.networks(given.get("networks") or [], declared_in, declared),
        mounts=tuple(
            attachments.mounts(given.get("volumes"), given.get("tmpfs"), declared_in, declared)
        ),
        user=fields.scalar(given["user"], "user") if "user" in given else None,
        working_dir=fields.scalar(given["working_dir"], "working_dir")
        if "working_dir" in given
        else None,
        init=fields.boolean(given["init"], "init") if "init" in given else None,
        read_only=fields.boolean(given["read_only"], "read_only") if "read_only" in given else None,
        cap_add=tuple(fields.strings(given.get("cap_add") or [], "cap_add")),
        cap_drop=tuple(fields.strings(given.get("cap_drop") or [], "cap_drop")),
        extra_hosts=tuple(fields.extra_hosts(given.get("extra_hosts") or [])),
        logging=fields.logging(logging) if logging is not None else None,
        ulimits=tuple(fields.ulimits(given.get("ulimits"))),
        stop_signal=fields.scalar(given["stop_signal"], "stop_signal")
        if "stop_signal" in given
        else None,
        restart=fields.restart(given["restart"]) if "restart" in given else None,
        restart_policy=fields.restart_policy(deploy["restart_policy"])
        if "restart_policy" in deploy
        else None,
        placement=fields.placement(deploy["placement"]) if "placement" in deploy else None,
        endpoint_mode=fields.choice(
            deploy.get("endpoint_mode"), "deploy.endpoint_mode", ("vip", "dnsrr")
        ),
        secrets=tuple(attachments.files("secrets", given.get("secrets"), declared_in, declared)),
        configs=tuple(attachments.files("configs", given.get("configs"), declared_in, declared)),
        declared=declared,
    )


def check_fields(given: set[str], deploy: Mapping[str, Any], provider: str) -> None:
    """Refuse, naming it, the first field that does not apply on `provider`."""
    for name in sorted(given) + sorted(f"deploy.{k}" for k in deploy):
        if name in APPLIES and APPLIES[name] != provider:
            raise InputError(f"spec: {name}: {NOT_HERE[name]}")
        if name in REASONS and (name != "deploy.mode" or deploy["mode"] != "replicated"):
            raise InputError(f"spec: {name}: {REASONS[name]}")
        known = DEPLOY_FIELDS if name.startswith("deploy.") else FIELDS
        if name not in APPLIES and name.removeprefix("deploy.") not in known:
            raise InputError(
                f"spec: {name}: not a Compose field that treadle applies on {provider} "
                "(docs/docker.md lists those that apply where)"
            )


def with_cluster_network(workload: Workload, network: str | None, alias: str) -> Workload:
    """The workload joined to the cluster's network under the cluster's name, the network
    made when missing: any load balancer resolving that name finds the cluster's serving
    instances."""
    if not network:
        return workload
    others = tuple(n for n in workload.networks if n.name != network)
    same = next((n for n in workload.networks if n.name == network), None)
    aliases = tuple(dict.fromkeys([*(same.aliases if same else ()), alias]))
    declared = copy.deepcopy(workload.declared)
    declared.networks.setdefault(network, {})
    return replace(workload, networks=(Network(network, aliases), *others), declared=declared)
