"""App definitions: request-body checks, Marathon's defaults, and validation.

Marathon rejects a body in two stages and the emulator keeps them apart because clients
see different status codes: JSON that does not parse into the expected types is a 400
("Invalid JSON", Play-JSON error codes such as error.expected.jsstring), a well-typed
definition that breaks a rule is a 422 ("Object is not valid").
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable
from typing import Any

Detail = dict[str, Any]  # {"path": "/instances", "errors": ["..."]}

ID_SEGMENT = re.compile(
    r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$"
)
# Marathon's own message quotes this (slightly wider) pattern.
ID_PATTERN_MESSAGE = (
    "must fully match regular expression "
    r"'^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*"
    r"([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$'"
)
# Sub-resources of /v2/apps/{id}; an app named like one could not be addressed.
RESERVED_ID_SEGMENTS = ("restart", "tasks", "versions")

# Fields the API computes; they are answered but never part of a definition.
READ_ONLY_FIELDS = (
    "version",
    "versionInfo",
    "tasksStaged",
    "tasksRunning",
    "tasksHealthy",
    "tasksUnhealthy",
    "tasks",
    "deployments",
    "lastTaskFailure",
    "taskStats",
    "readinessCheckResults",
)

# JSON kind of every accepted top-level field: the properties of AppDefinition.json plus
# `storeUrls` (still echoed by Marathon) and `tty` (newer than that schema).
FIELD_KINDS: dict[str, str] = {
    "id": "string",
    "cmd": "string",
    "user": "string",
    "executor": "string",
    "killSelection": "string",
    "version": "string",
    "cpus": "number",
    "mem": "number",
    "disk": "number",
    "backoffFactor": "number",
    "instances": "int",
    "gpus": "int",
    "backoffSeconds": "int",
    "maxLaunchDelaySeconds": "int",
    "taskKillGracePeriodSeconds": "int",
    "requirePorts": "boolean",
    "tty": "boolean",
    "args": "array",
    "constraints": "array",
    "dependencies": "array",
    "fetch": "array",
    "healthChecks": "array",
    "readinessChecks": "array",
    "uris": "array",
    "storeUrls": "array",
    "acceptedResourceRoles": "array",
    "portDefinitions": "array",
    "ports": "array",
    "networks": "array",
    "env": "object",
    "labels": "object",
    "secrets": "object",
    "upgradeStrategy": "object",
    "residency": "object",
    "ipAddress": "object",
    "container": "object",
    "versionInfo": "object",
    "executorResources": "object",
    "unreachableStrategy": "unreachable",
}
ARRAY_ITEM_KINDS: dict[str, str] = {
    "args": "string",
    "uris": "string",
    "dependencies": "string",
    "acceptedResourceRoles": "string",
    "storeUrls": "string",
    "ports": "int",
    "constraints": "array",
    "fetch": "object",
    "healthChecks": "object",
    "readinessChecks": "object",
    "portDefinitions": "object",
    "networks": "object",
}
DOCKER_NETWORKS = ("BRIDGE", "HOST", "NONE", "USER")
HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
HTTP_HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS")
KILL_SELECTIONS = ("YOUNGEST_FIRST", "OLDEST_FIRST")
CMD_ARGS_CONTAINER = (
    "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."
)


class InvalidJson(Exception):
    """400: the body does not read as an app definition."""

    def __init__(self, details: list[Detail]) -> None:
        super().__init__(details)
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"message": "Invalid JSON", "details": self.details}


class InvalidApp(Exception):
    """422: the definition reads but breaks a rule."""

    def __init__(self, details: list[Detail]) -> None:
        super().__init__(details)
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"message": "Object is not valid", "details": self.details}


def detail(path: str, error: str) -> Detail:
    return {"path": path, "errors": [error]}


# -- ids -------------------------------------------------------------------------------


def canonical_id(raw: str) -> str:
    """Absolute form of an app or group id: `web/` and `//web` both mean `/web`."""
    return "/" + "/".join(segment for segment in raw.split("/") if segment)


def id_errors(app_id: str) -> list[Detail]:
    segments = [s for s in app_id.split("/") if s]
    if not segments:
        return [detail("/id", "must not be the root group")]
    if not all(ID_SEGMENT.match(s) for s in segments):
        return [detail("/id", ID_PATTERN_MESSAGE)]
    if segments[-1] in RESERVED_ID_SEGMENTS:
        return [
            detail(
                "/id",
                "must not end with any of the following reserved keywords: "
                + ", ".join(RESERVED_ID_SEGMENTS),
            )
        ]
    return []


def parent_ids(path_id: str) -> list[str]:
    """Enclosing groups of an id, outermost first: /a/b/c -> ["/", "/a", "/a/b"]."""
    segments = [s for s in path_id.split("/") if s]
    return ["/" + "/".join(segments[:i]) if i else "/" for i in range(len(segments))]


# -- stage 1: the body reads as JSON of the right kinds (400) --------------------------


def _kind_error(value: Any, kind: str) -> str | None:
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "string":
        return None if isinstance(value, str) else "error.expected.jsstring"
    if kind == "number":
        return None if is_number else "error.expected.jsnumber"
    if kind == "int":
        if not is_number:
            return "error.expected.jsnumber"
        return None if float(value).is_integer() else "error.expected.int"
    if kind == "boolean":
        return None if isinstance(value, bool) else "error.expected.jsboolean"
    if kind == "array":
        return None if isinstance(value, list) else "error.expected.jsarray"
    if kind == "object":
        return None if isinstance(value, dict) else "error.expected.jsobject"
    if kind == "unreachable":
        return None if isinstance(value, dict) or value == "disabled" else "error.expected.jsobject"
    raise AssertionError(kind)


def check_body(body: Any, require_id: bool) -> None:
    """Raise InvalidJson unless `body` reads as an app definition; InvalidApp for unknown fields.

    null stands for "absent" (Marathon reads every optional field as nullable), so an app
    fetched from the API (`"cmd": null`) can be sent back.
    """
    if not isinstance(body, dict):
        raise InvalidJson([detail("/", "error.expected.jsobject")])
    if require_id and body.get("id") is None:
        raise InvalidJson([detail("/id", "error.path.missing")])
    errors: list[Detail] = []
    for name, value in body.items():
        kind = FIELD_KINDS.get(name)
        if kind is None or value is None:
            continue
        error = _kind_error(value, kind)
        if error:
            errors.append(detail(f"/{name}", error))
    for name in ("labels", "env"):
        mapping = body.get(name)
        for key, value in mapping.items() if isinstance(mapping, dict) else ():
            secret_ref = (
                name == "env" and isinstance(value, dict) and isinstance(value.get("secret"), str)
            )
            if not isinstance(value, str) and not secret_ref:
                errors.append(detail(f"/{name}/{key}", "error.expected.jsstring"))
    for name, item_kind in ARRAY_ITEM_KINDS.items():
        items = body.get(name)
        for index, item in enumerate(items) if isinstance(items, list) else ():
            error = _kind_error(item, item_kind)
            if error:
                errors.append(detail(f"/{name}({index})", error))
    container = body.get("container")
    if isinstance(container, dict):
        docker = container.get("docker")
        if docker is not None and not isinstance(docker, dict):
            errors.append(detail("/container/docker", "error.expected.jsobject"))
            docker = None
        docker = docker or {}
        if docker.get("network") not in (None, *DOCKER_NETWORKS):
            errors.append(detail("/container/docker/network", "error.expected.validenumvalue"))
        for path, mappings in (
            ("/container/portMappings", container.get("portMappings")),
            ("/container/docker/portMappings", docker.get("portMappings")),
        ):
            if mappings is not None and not isinstance(mappings, list):
                errors.append(detail(path, "error.expected.jsarray"))
                continue
            errors += [
                detail(f"{path}({index})", "error.expected.jsobject")
                for index, mapping in enumerate(mappings or [])
                if not isinstance(mapping, dict)
            ]
    for index, fetch in (
        enumerate(body.get("fetch") or []) if isinstance(body.get("fetch"), list) else ()
    ):
        if isinstance(fetch, dict) and not isinstance(fetch.get("uri"), str):
            errors.append(detail(f"/fetch({index})/uri", "error.expected.jsstring"))
    if errors:
        raise InvalidJson(errors)
    # AppDefinition.json has additionalProperties: false. Computed fields sent back
    # (tasksRunning, deployments, ...) are rejected too, so a client that forgets to
    # strip them finds out here.
    rejected = [name for name in body if name not in FIELD_KINDS]
    if rejected:
        raise InvalidApp(
            [
                detail(f"/{name}", "is not a known property of an app definition")
                for name in rejected
            ]
        )


# -- stage 2: Marathon's defaults --------------------------------------------------------


def _defaults() -> dict[str, Any]:
    # Key order is the order Marathon 1.x writes an app in.
    return {
        "id": None,
        "cmd": None,
        "args": None,
        "user": None,
        "env": {},
        "instances": 1,
        "cpus": 1,
        "mem": 128,
        "disk": 0,
        "gpus": 0,
        "executor": "",
        "constraints": [],
        "uris": [],
        "fetch": [],
        "storeUrls": [],
        "backoffSeconds": 1,
        "backoffFactor": 1.15,
        "maxLaunchDelaySeconds": 3600,
        "container": None,
        "healthChecks": [],
        "readinessChecks": [],
        "dependencies": [],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
        "labels": {},
        "ipAddress": None,
        "residency": None,
        "secrets": {},
        "taskKillGracePeriodSeconds": None,
        "unreachableStrategy": {"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600},
        "killSelection": "YOUNGEST_FIRST",
        "requirePorts": False,
        "portDefinitions": None,
        "acceptedResourceRoles": ["*"],
    }


def port_mappings(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """Container port mappings, wherever the definition keeps them (1.5 or older layout)."""
    container = definition.get("container") or {}
    mappings = container.get("portMappings")
    if mappings is None:
        mappings = (container.get("docker") or {}).get("portMappings")
    return mappings or []


def service_port_conflicts(
    definition: dict[str, Any], others: Iterable[dict[str, Any]]
) -> list[Detail]:
    """Marathon's rule across apps: a service port asked for (not 0) that another app's
    port mappings hold is refused, in Marathon's words."""
    asked = {int(m.get("servicePort") or 0) for m in port_mappings(definition)} - {0}
    return [
        detail(
            "/", f"Requested service port {port} conflicts with a service port in app {other['id']}"
        )
        for other in others
        if other["id"] != definition["id"]
        for port in (int(m.get("servicePort") or 0) for m in port_mappings(other))
        if port in asked
    ]


def image_of(definition: dict[str, Any]) -> str | None:
    container = definition.get("container") or {}
    return (container.get("docker") or {}).get("image")


def _normalize_container(container: dict[str, Any]) -> dict[str, Any]:
    result = {"type": container.get("type", "DOCKER"), "volumes": [], **container}
    docker = result.get("docker")
    if result["type"] == "DOCKER" and isinstance(docker, dict):
        result["docker"] = {
            "privileged": False,
            "parameters": [],
            "forcePullImage": False,
            **docker,
        }
    for mappings in (result.get("portMappings"), (result.get("docker") or {}).get("portMappings")):
        for index, mapping in enumerate(mappings or []):
            mappings[index] = {
                "containerPort": 0,
                "hostPort": 0,
                "servicePort": 0,
                "protocol": "tcp",
                **mapping,
            }
    return result


def _normalize_health_check(check: dict[str, Any]) -> dict[str, Any]:
    result = {
        "protocol": "HTTP",
        "gracePeriodSeconds": 300,
        "intervalSeconds": 60,
        "timeoutSeconds": 20,
        "maxConsecutiveFailures": 3,
        "delaySeconds": 15,
        **check,
    }
    if result["protocol"] in HTTP_HEALTH_PROTOCOLS:
        result.setdefault("path", "/")
        result.setdefault("ignoreHttp1xx", False)
    if result["protocol"] != "COMMAND" and "port" not in result:
        result.setdefault("portIndex", 0)
    return result


def normalize(fields: dict[str, Any]) -> dict[str, Any]:
    """The full definition Marathon stores for `fields` (a checked body), defaults applied.

    Marathon answers the deprecated `uris` and `ports` next to `fetch` and
    `portDefinitions`, so a fetched app carries both; the newer field wins. Service
    ports are left at 0 here; the scheduler state assigns them.
    """
    given = {
        k: copy.deepcopy(v)
        for k, v in fields.items()
        if v is not None and k not in READ_ONLY_FIELDS and k != "ports"
    }
    definition = _defaults()
    definition.update(given)
    definition["id"] = canonical_id(str(given.get("id", "")))
    if "fetch" in given:
        definition["uris"] = [f["uri"] for f in given["fetch"]]
    elif "uris" in given:
        definition["fetch"] = [
            {"uri": u, "extract": True, "executable": False, "cache": False} for u in given["uris"]
        ]
    definition["upgradeStrategy"] = {
        **_defaults()["upgradeStrategy"],
        **given.get("upgradeStrategy", {}),
    }
    if isinstance(definition["container"], dict):
        definition["container"] = _normalize_container(definition["container"])
    definition["healthChecks"] = [_normalize_health_check(c) for c in definition["healthChecks"]]
    if "portDefinitions" in given:
        ports = given["portDefinitions"]
    elif fields.get("ports") is not None:
        ports = [{"port": p} for p in fields["ports"]]
    elif port_mappings(definition) or definition["ipAddress"] or _on_container_network(definition):
        ports = []
    else:
        ports = [{"port": 0, "name": "default"}]
    definition["portDefinitions"] = [{"port": 0, "protocol": "tcp", **p} for p in ports]
    return definition


def _on_container_network(definition: dict[str, Any]) -> bool:
    return any(
        isinstance(n, dict) and n.get("mode", "container") != "host"
        for n in definition.get("networks") or []
    )


def merge(current: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Fields of a partial update (PUT default, PATCH) laid over the current definition."""
    given = {k: v for k, v in body.items() if v is not None and k not in READ_ONLY_FIELDS}
    fields = copy.deepcopy(current)
    # These pairs say the same thing two ways; a new value for one replaces the other.
    for a, b in (("cmd", "args"), ("uris", "fetch"), ("ports", "portDefinitions")):
        if a in given and b not in given:
            fields.pop(b, None)
        if b in given and a not in given:
            fields.pop(a, None)
    fields.update(given)
    return fields


# -- stage 3: rules (422) ----------------------------------------------------------------


def _at_least(path: str, value: Any, minimum: float) -> list[Detail]:
    if isinstance(value, (int, float)) and value < minimum:
        return [detail(path, f"got {value}, expected {minimum} or more")]
    return []


def validate(definition: dict[str, Any]) -> list[Detail]:
    """422 details for a normalized definition."""
    errors = id_errors(definition["id"])
    errors += _at_least("/instances", definition["instances"], 0)
    for name in ("cpus", "mem", "disk", "gpus", "backoffSeconds", "maxLaunchDelaySeconds"):
        errors += _at_least(f"/{name}", definition[name], 0)
    errors += _at_least("/backoffFactor", definition["backoffFactor"], 1)
    for name in ("minimumHealthCapacity", "maximumOverCapacity"):
        value = definition["upgradeStrategy"].get(name)
        path = f"/upgradeStrategy/{name}"
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(detail(path, "must be a number"))
        elif value > 1:
            errors.append(detail(path, "is greater than 1"))
        elif value < 0:
            errors.append(detail(path, "is less than 0"))
    has_cmd, has_args = definition["cmd"] is not None, bool(definition["args"])
    if not (has_cmd ^ has_args) and definition["container"] is None:
        errors.append(detail("/", CMD_ARGS_CONTAINER))
    container = definition["container"]
    if container is not None:
        if container.get("type") not in ("DOCKER", "MESOS"):
            errors.append(detail("/container/type", "must be one of DOCKER, MESOS"))
        elif container["type"] == "DOCKER" and not image_of(definition):
            errors.append(detail("/container/docker/image", "must not be empty"))
    for index, check in enumerate(definition["healthChecks"]):
        if check.get("protocol") not in HEALTH_PROTOCOLS:
            errors.append(
                detail(
                    f"/healthChecks({index})/protocol",
                    "must be one of " + ", ".join(HEALTH_PROTOCOLS),
                )
            )
    if definition["killSelection"] not in KILL_SELECTIONS:
        errors.append(detail("/killSelection", "must be one of " + ", ".join(KILL_SELECTIONS)))
    return errors


def without_instances(definition: dict[str, Any]) -> dict[str, Any]:
    """The part of a definition whose change restarts tasks (everything but the scale)."""
    return {k: v for k, v in definition.items() if k != "instances"}


def capacity_to_keep(instances: int, minimum_health_capacity: float) -> int:
    """Tasks an upgrade must keep serving: ceil(instances * minimumHealthCapacity)."""
    # The epsilon keeps 3 * 0.1-style float noise from adding a task.
    return math.ceil(instances * minimum_health_capacity - 1e-9)
