"""Marathon app definitions to and from server groups, without any HTTP: what treadle
sends is built here, and what Marathon answers is read here."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from treadle.errors import InputError
from treadle.naming import Cluster, try_parse_server_group
from treadle.providers.base import (
    LABEL_CREATED_AT,
    LABEL_DISABLED_INSTANCES,
    NewServerGroup,
    ServerGroup,
)

_SEGMENT = re.compile(
    r"(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])"
)

# The fields of an app definition that Marathon accepts (AppDefinition.json). Anything
# else in a spec would be refused with a 422, so it is refused here first.
APP_FIELDS = frozenset(
    "acceptedResourceRoles args backoffFactor backoffSeconds cmd constraints container cpus "
    "dependencies disk env executor executorResources fetch gpus healthChecks id instances "
    "ipAddress killSelection labels maxLaunchDelaySeconds mem networks portDefinitions ports "
    "readinessChecks requirePorts residency secrets taskKillGracePeriodSeconds "
    "unreachableStrategy upgradeStrategy uris user".split()
)
# What Marathon adds when it answers; sending `version` back would even roll the app back.
READ_ONLY = frozenset(
    "version versionInfo tasks tasksStaged tasksRunning tasksHealthy tasksUnhealthy "
    "deployments lastTaskFailure taskStats readinessCheckResults storeUrls".split()
)
NUMBERS = (
    "cpus",
    "mem",
    "disk",
    "gpus",
    "backoffSeconds",
    "backoffFactor",
    "maxLaunchDelaySeconds",
    "taskKillGracePeriodSeconds",
)


def check_region(region: str) -> str:
    """`/`, `prod`, `/prod/us-east/` -> canonical group path (`/prod/us-east`)."""
    path = "/" + (region or "").strip().strip("/")
    if path != "/":
        for segment in path[1:].split("/"):
            if not _SEGMENT.fullmatch(segment):
                raise InputError(
                    f"invalid region {region!r}: Marathon group path segments use lower-case "
                    "letters, digits, '-' and '.' (for example /prod/us-east)"
                )
    return path


def app_id(region: str, name: str) -> str:
    return f"{region.rstrip('/')}/{name}"


def parent_of(app_id: str) -> str:
    return app_id.rsplit("/", 1)[0] or "/"


def image_of(app: Mapping[str, Any]) -> str | None:
    container = app.get("container") or {}
    docker = container.get("docker") or {}
    image = docker.get("image")
    return image if isinstance(image, str) else None


def to_server_group(app: Mapping[str, Any]) -> ServerGroup | None:
    """The server group an app is, or None for an app whose name is not treadle's."""
    app_path = str(app.get("id") or "")
    name = app_path.rsplit("/", 1)[-1]
    if try_parse_server_group(name) is None:
        return None
    labels = {str(k): str(v) for k, v in (app.get("labels") or {}).items()}
    version_info = app.get("versionInfo") or {}
    return ServerGroup(
        name=name,
        region=parent_of(app_path),
        image=image_of(app),
        instances=int(app.get("instances") or 0),
        enabled=labels.get(LABEL_DISABLED_INSTANCES) is None,
        created_at=labels.get(LABEL_CREATED_AT)
        or version_info.get("lastConfigChangeAt")
        or app.get("version"),
        labels=labels,
        id=app_path,
    )


def apps_of_group(group: Mapping[str, Any], cluster: Cluster | None = None) -> list[dict[str, Any]]:
    """The apps directly in a group, from a /v2/groups answer; only those whose names
    could be `cluster`'s server groups when given (a cheap test on the id, so that a
    region of thousands of apps costs no more than reading its answer)."""
    prefix = f"{group.get('id')}/".replace("//", "/")
    if cluster is not None:
        prefix += f"{cluster.name}-v"
    return [
        a
        for a in group.get("apps") or []
        if str(a.get("id", "")).startswith(prefix) and parent_of(str(a["id"])) == group.get("id")
    ]


def writable(app: Mapping[str, Any]) -> dict[str, Any]:
    """An app as read back, fit to be sent again: read-only fields stripped, and the
    nulls and deprecated `ports` that Marathon answers with but its schema refuses."""
    sent = {k: copy.deepcopy(v) for k, v in app.items() if k not in READ_ONLY and v is not None}
    if "portDefinitions" in sent:
        sent.pop("ports", None)
    return sent


def build_definition(new: NewServerGroup) -> dict[str, Any]:
    """An app definition for a new server group: the spec, with treadle's id, image,
    instances and labels (a spec's own id is replaced, so an existing app definition can
    serve as the spec). Input errors name the spec field to fix."""
    spec = writable(new.spec or {})
    unknown = sorted(set(new.spec or {}) - APP_FIELDS - READ_ONLY)
    if unknown:
        raise InputError(
            f"spec: unknown Marathon app field(s) {', '.join(map(repr, unknown))} "
            "(see Marathon's AppDefinition schema)"
        )
    for field in NUMBERS:
        value = spec.get(field)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            raise InputError(f"spec: {field} must be a number of 0 or more, not {value!r}")
    for field, kind in (
        ("env", dict),
        ("labels", dict),
        ("container", dict),
        ("healthChecks", list),
        ("constraints", list),
    ):
        if field in spec and not isinstance(spec[field], kind):
            raise InputError(f"spec: {field} must be {'an object' if kind is dict else 'a list'}")
    labels = spec.get("labels") or {}
    for key, value in labels.items():
        if not isinstance(value, str):
            raise InputError(f"spec: label {key!r} must be a string, not {value!r}")
    container = spec.setdefault("container", {})
    container.setdefault("type", "DOCKER")
    if container["type"] not in ("DOCKER", "MESOS"):
        raise InputError(f"spec: container.type must be DOCKER or MESOS, not {container['type']!r}")
    docker = container.setdefault("docker", {})
    if not isinstance(docker, dict):
        raise InputError("spec: container.docker must be an object")
    docker["image"] = new.image
    spec["id"] = app_id(new.region, new.name.name)
    spec["instances"] = new.instances
    spec["labels"] = {**labels, **new.labels}
    return spec
