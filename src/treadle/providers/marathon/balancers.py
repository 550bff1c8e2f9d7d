"""marathon-lb's zero-downtime conventions, kept for a cluster whose spec names a
deployment group (the label HAPROXY_DEPLOYMENT_GROUP).

marathon-lb serves every app of one deployment group as one backend on the frontend port
(HAPROXY_0_PORT). Of two such apps it takes the one scaled most recently as the new one
(when HAPROXY_DEPLOYMENT_NEW_INSTANCES is set) and stops sending to as many of the other's
tasks as the new one has healthy beyond HAPROXY_DEPLOYMENT_TARGET_INSTANCES: a full-size new
group takes all the traffic the moment it is healthy, a canary its share. Marathon gives
each app its own service port, so the two take turns on HAPROXY_0_PORT and
HAPROXY_DEPLOYMENT_ALT_PORT (blue and green, HAPROXY_DEPLOYMENT_COLOUR).

treadle writes these labels on every new server group of such a cluster; a rollback or an
enable scales the group it restores, which makes it the new one again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from treadle.errors import InputError, Refused
from treadle.providers.base import LABEL_CANARY, LABEL_CAPACITY, LABEL_CREATED_AT, NewServerGroup

GROUP = "HAPROXY_DEPLOYMENT_GROUP"
ALT_PORT = "HAPROXY_DEPLOYMENT_ALT_PORT"
PORT = "HAPROXY_0_PORT"
COLOUR = "HAPROXY_DEPLOYMENT_COLOUR"
STARTED_AT = "HAPROXY_DEPLOYMENT_STARTED_AT"
TARGET = "HAPROXY_DEPLOYMENT_TARGET_INSTANCES"
NEW_INSTANCES = "HAPROXY_DEPLOYMENT_NEW_INSTANCES"
# The first on HAPROXY_0_PORT, the other on HAPROXY_DEPLOYMENT_ALT_PORT.
COLOURS = ("blue", "green")


def in_deployment_group(labels: Mapping[str, str]) -> bool:
    """Whether marathon-lb takes a group of these labels out of rotation by itself once a
    newer one of its deployment group is healthy."""
    return bool(labels.get(GROUP))


def _port(value: Any, what: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 0 < port < 65536:
        raise InputError(f"spec: {what} must be a port between 1 and 65535, not {value!r}")
    return port


def _first_service_port(definition: dict[str, Any]) -> tuple[dict[str, Any], str] | None:
    """Where the app's first service port is written, as marathon-lb reads it."""
    container = definition.get("container") or {}
    for mappings in (
        container.get("portMappings"),
        (container.get("docker") or {}).get("portMappings"),
    ):
        if mappings:
            return mappings[0], "servicePort"
    ports = definition.get("portDefinitions")
    if ports:
        return ports[0], "port"
    return None


def keep_conventions(definition: dict[str, Any], new: NewServerGroup) -> None:
    """Write marathon-lb's labels and this group's turn of service port into `definition`
    (its labels already merged); nothing when the spec names no deployment group.
    InputError for a spec marathon-lb could not serve; Refused when both ports are taken
    by server groups of the cluster."""
    labels: dict[str, str] = definition["labels"]
    group = labels.get(GROUP)
    if not group:
        return
    slot = _first_service_port(definition)
    if slot is None:
        raise InputError(
            f"spec: label {GROUP} needs a service port: set container.portMappings[0]"
            ".servicePort (or portDefinitions[0].port) to the port marathon-lb serves on"
        )
    holder, key = slot
    if ALT_PORT not in labels:
        raise InputError(
            f"spec: label {GROUP} needs {ALT_PORT}: Marathon gives every app its own service "
            "port, so a new server group serves on the other one while both run"
        )
    frontend = _port(labels.get(PORT) or holder.get(key), f"label {PORT} (or the service port)")
    alternate = _port(labels[ALT_PORT], f"label {ALT_PORT}")
    if alternate == frontend:
        raise InputError(f"spec: label {ALT_PORT} must differ from the service port {frontend}")
    taken = {
        s.labels.get(COLOUR): s.name
        for s in new.siblings
        if s.labels.get(GROUP) == group and s.labels.get(COLOUR) in COLOURS
    }
    free = [c for c in COLOURS if c not in taken]
    if not free:
        older = sorted(taken.values())[0]
        raise Refused(
            f"marathon-lb's deployment group {group} already has server groups on both "
            f"service ports ({', '.join(sorted(taken.values()))}): destroy {older} first, "
            "or deploy red/black with --max-remaining 0 so that one group is left"
        )
    colour = free[0]
    holder[key] = frontend if colour == COLOURS[0] else alternate
    size = new.labels.get(LABEL_CANARY) or new.labels.get(LABEL_CAPACITY) or str(new.instances)
    labels.update(
        {
            PORT: str(frontend),
            COLOUR: colour,
            TARGET: size,
            # Set (and never 0), it makes marathon-lb take the group scaled most recently
            # as the new one, which is what a rollback or an enable needs.
            NEW_INSTANCES: str(new.instances or size),
        }
    )
    if LABEL_CREATED_AT in new.labels:
        labels[STARTED_AT] = new.labels[LABEL_CREATED_AT]
