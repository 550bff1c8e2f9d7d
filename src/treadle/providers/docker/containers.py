"""Containers as the Docker provider makes and reads them: the Engine API's create body
for a server group's or a job's containers, and one server group's containers as the
engine lists them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from treadle.providers.base import (
    LABEL_CLUSTER,
    LABEL_DISABLED_BY,
    LABEL_DISABLED_INSTANCES,
    LABEL_NETWORK,
)
from treadle.providers.engine import spec

LABEL_INSTANCE = "treadle.instance"
RESTART_POLICY = {"Name": "unless-stopped"}
# A job runs once: its exit is its outcome.
JOB_RESTART_POLICY = {"Name": "no"}
# The parts of a container's create body that a definition sets. Copied from an existing
# container they make an identical one: what the engine filled in from the image (Env,
# Cmd, Entrypoint, Labels, Healthcheck, ...) is what it would fill in again.
CONFIG_KEYS = (
    "Image",
    "Cmd",
    "Entrypoint",
    "Env",
    "Labels",
    "ExposedPorts",
    "Healthcheck",
    "StopTimeout",
    "StopSignal",
    "User",
    "WorkingDir",
)
HOST_CONFIG_KEYS = (
    "PortBindings",
    "RestartPolicy",
    "NanoCpus",
    "Memory",
    "MemoryReservation",
    "PidsLimit",
    "Mounts",
    "NetworkMode",
    "CapAdd",
    "CapDrop",
    "ExtraHosts",
    "LogConfig",
    "Ulimits",
    "Init",
    "ReadonlyRootfs",
)
# What the engine calls the network of a container that names none.
DEFAULT_NETWORKS = ("default", "bridge")


def container_config(
    workload: spec.Workload, labels: dict[str, str], restart: dict[str, Any] = RESTART_POLICY
) -> dict[str, Any]:
    """The Engine API's create body (POST /containers/create) for every container of a
    server group, or for a job's. Ports are published on 127.0.0.1, on ports the engine
    picks, unless the spec says otherwise; the container joins the spec's networks with
    their aliases (the first in NetworkMode, all of them in NetworkingConfig)."""
    w = workload
    config: dict[str, Any] = {"Image": w.image, "Labels": labels, "Env": list(w.environment)}
    optional = {
        "Entrypoint": w.entrypoint,
        "Cmd": w.command,
        "Healthcheck": w.healthcheck,
        "StopTimeout": None if w.stop_grace is None else math.ceil(w.stop_grace / 10**9),
        "StopSignal": w.stop_signal,
        "User": w.user,
        "WorkingDir": w.working_dir,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    bindings: dict[str, list[dict[str, str]]] = {}
    for port in w.ports:
        bindings.setdefault(port.key, []).append(
            {"HostIp": port.host_ip or spec.LOOPBACK, "HostPort": str(port.published or "")}
        )
    exposed = [*bindings, *w.expose]
    if exposed:
        config["ExposedPorts"] = {key: {} for key in exposed}
    host: dict[str, Any] = {"PortBindings": bindings, "RestartPolicy": w.restart or restart}
    host_optional = {
        "NanoCpus": w.nano_cpus,
        "Memory": w.memory,
        "MemoryReservation": w.memory_reservation,
        "PidsLimit": w.pids,
        "Mounts": list(w.mounts) or None,
        "CapAdd": list(w.cap_add) or None,
        "CapDrop": list(w.cap_drop) or None,
        "ExtraHosts": [f"{host}:{address}" for host, address in w.extra_hosts] or None,
        "LogConfig": {"Type": w.logging[0], "Config": dict(w.logging[1])} if w.logging else None,
        "Ulimits": list(w.ulimits) or None,
        "Init": w.init,
        "ReadonlyRootfs": w.read_only,
    }
    host.update({k: v for k, v in host_optional.items() if v is not None})
    if w.networks:
        host["NetworkMode"] = w.networks[0].name
        config["NetworkingConfig"] = {
            "EndpointsConfig": {n.name: {"Aliases": list(n.aliases)} for n in w.networks}
        }
    config["HostConfig"] = host
    return config


def copy_config(inspected: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """The create body of an existing container (from its inspect), with other labels."""
    config = {
        k: inspected["Config"][k] for k in CONFIG_KEYS if inspected["Config"].get(k) is not None
    }
    host = inspected["HostConfig"]
    config["HostConfig"] = {k: host[k] for k in HOST_CONFIG_KEYS if host.get(k) is not None}
    config["Labels"] = labels
    # The engine adds the container's short id to its aliases: not the definition's.
    own = inspected["Id"][:12]
    networks = (inspected.get("NetworkSettings") or {}).get("Networks") or {}
    endpoints = {
        name: {"Aliases": [a for a in endpoint.get("Aliases") or [] if a != own]}
        for name, endpoint in networks.items()
        if name not in DEFAULT_NETWORKS
    }
    if endpoints:
        config["NetworkingConfig"] = {"EndpointsConfig": endpoints}
    return config


def outside_alias(config: dict[str, Any]) -> dict[str, Any]:
    """The create body of an instance that starts on its cluster's network without the
    cluster's alias: it joins the alias once healthy (DockerProvider.join)."""
    network, alias = config["Labels"].get(LABEL_NETWORK), config["Labels"].get(LABEL_CLUSTER)
    endpoints = (config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    if not network or network not in endpoints:
        return config
    aliases = [a for a in endpoints[network].get("Aliases") or [] if a != alias]
    endpoint = {**endpoints[network], "Aliases": aliases}
    return {**config, "NetworkingConfig": {"EndpointsConfig": {**endpoints, network: endpoint}}}


def endpoint_aliases(config: dict[str, Any], network: str) -> list[str]:
    """The aliases a create body gives a container on a network."""
    endpoints = (config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    return list((endpoints.get(network) or {}).get("Aliases") or [])


def networks_of(container: dict[str, Any]) -> dict[str, Any]:
    """The networks a container is on, from its inspect or the engine's listing."""
    return dict((container.get("NetworkSettings") or {}).get("Networks") or {})


def aliases_on(inspected: dict[str, Any], network: str) -> list[str]:
    """A container's aliases on a network (from its inspect), without the short id that
    the engine adds."""
    endpoint = networks_of(inspected).get(network) or {}
    return [a for a in endpoint.get("Aliases") or [] if a != inspected["Id"][:12]]


def definition_labels(labels: dict[str, str]) -> dict[str, str]:
    """A container's labels without those that say which instance it is or that the
    group is disabled."""
    return {
        k: v
        for k, v in labels.items()
        if k not in (LABEL_INSTANCE, LABEL_DISABLED_INSTANCES, LABEL_DISABLED_BY)
    }


def number(container: dict[str, Any]) -> int:
    return int(container["Labels"].get(LABEL_INSTANCE) or 0)


@dataclass
class Containers:
    """One server group's containers as the engine lists them (GET /containers/json)."""

    name: str
    definition: dict[str, Any] | None
    instances: list[dict[str, Any]]

    @classmethod
    def of(cls, region: str, server_group: str, listed: list[dict[str, Any]]) -> Containers:
        definition = next((c for c in listed if LABEL_INSTANCE not in c["Labels"]), None)
        instances = sorted((c for c in listed if LABEL_INSTANCE in c["Labels"]), key=number)
        return cls(spec.resource_name(region, server_group), definition, instances)

    @property
    def source(self) -> dict[str, Any]:
        """What holds the definition: the definition container, or an instance when an
        interrupted enable or disable left none."""
        return self.definition or self.instances[0]

    def endpoints(self) -> tuple[str, ...]:
        found = [
            spec.endpoint(p.get("IP", ""), p["PublicPort"], p["Type"])
            for c in self.instances
            if c["State"] == "running"
            for p in sorted(c.get("Ports") or [], key=lambda p: (p["PrivatePort"], p["Type"]))
            if p.get("PublicPort")
        ]
        return tuple(dict.fromkeys(found))
