"""What the Docker and Swarm providers share, without any call to an engine: the spec file
(a small YAML close to a Compose service), regions, resource names and labels.

    image: web:1.4.2               # --image wins
    command: ["httpd", "-f"]       # or a string, split like a shell would
    environment: {LOG: debug}      # or ["LOG=debug"]
    ports: ["8080", "127.0.0.1::9090", "5353/udp", {target: 80, published: 8000, mode: host}]
    healthcheck: {test: ["CMD", "wget", "-qO-", "http://127.0.0.1:8080/"], interval: 1s,
                  timeout: 500ms, retries: 3, start_period: 2s}
    labels: {team: web}            # or ["team=web"]
    cpus: 0.5                      # or deploy.resources.limits.cpus
    mem_limit: 256m                # or deploy.resources.limits.memory
    stop_grace_period: 5s
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from treadle.errors import InputError
from treadle.naming import MAX_NAME, try_parse_server_group
from treadle.providers.base import (
    LABEL_CLUSTER,
    LABEL_CREATED_AT,
    LABEL_DISABLED_INSTANCES,
    LABEL_PREFIX,
    NewServerGroup,
    ServerGroup,
)

DEFAULT_REGION = "local"
LOOPBACK = "127.0.0.1"
LABEL_REGION = "treadle.region"
LABEL_SERVER_GROUP = "treadle.server-group"
# Neither a region nor a server group name can hold it, so prefixed names never collide.
REGION_SEPARATOR = "_"

FIELDS = (
    "image",
    "command",
    "environment",
    "ports",
    "healthcheck",
    "labels",
    "cpus",
    "mem_limit",
    "stop_grace_period",
    "deploy",
)
HEALTHCHECK_FIELDS = ("test", "interval", "timeout", "retries", "start_period", "disable")
PORT_FIELDS = ("target", "published", "host_ip", "protocol", "mode")
PROTOCOLS = ("tcp", "udp", "sctp")
PUBLISH_MODES = ("ingress", "host")

_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_NANOS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_BYTES = re.compile(r"(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?", re.IGNORECASE)
_POWERS = {"": 0, "b": 0, "k": 1, "m": 2, "g": 3, "t": 4}


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


@dataclass(frozen=True)
class Port:
    target: int
    protocol: str = "tcp"
    # None: an ephemeral port that the engine picks.
    published: int | None = None
    # None: the provider's default (127.0.0.1 on Docker; Swarm binds every address).
    host_ip: str | None = None
    # Swarm only: ingress (the routing mesh, Swarm's default) or host.
    mode: str | None = None

    @property
    def key(self) -> str:
        """Docker's name for the container port: `8080/tcp`."""
        return f"{self.target}/{self.protocol}"


@dataclass(frozen=True)
class Workload:
    """A checked spec, in the Engine API's own units (nanoseconds, bytes, nano-CPUs)."""

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
    # Replaces the image's ENTRYPOINT; no spec field sets it, run-job's --cmd does.
    entrypoint: list[str] | None = None


def parse(spec: Mapping[str, Any] | None, image: str) -> Workload:
    """A spec file's content, checked; InputError names the field to fix."""
    spec = spec or {}
    unknown = sorted(set(spec) - set(FIELDS))
    if unknown:
        raise InputError(
            f"spec: unknown field(s) {', '.join(unknown)}: a Docker or Swarm spec takes "
            f"{', '.join(FIELDS)}"
        )
    if "image" in spec and not isinstance(spec["image"], str):
        raise InputError(f"spec: image must be a string, not {spec['image']!r}")
    nano_cpus, memory = limits(spec)
    return Workload(
        image=image,
        command=command(spec["command"]) if "command" in spec else None,
        environment=environment(spec.get("environment")),
        ports=tuple(port(p, f"ports[{i}]") for i, p in enumerate(listed(spec, "ports"))),
        healthcheck=healthcheck(spec["healthcheck"]) if "healthcheck" in spec else None,
        labels=labels(spec.get("labels")),
        nano_cpus=nano_cpus,
        memory=memory,
        stop_grace=duration(spec["stop_grace_period"], "stop_grace_period")
        if "stop_grace_period" in spec
        else None,
    )


def listed(spec: Mapping[str, Any], field: str) -> list[Any]:
    value = spec.get(field) or []
    if not isinstance(value, list):
        raise InputError(f"spec: {field} must be a list, not {value!r}")
    return value


def command(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise InputError(f"spec: command {value!r} cannot be split: {e}") from None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InputError(f"spec: command must be a string or a list of strings, not {value!r}")


def scalar(value: Any, field: str) -> str:
    """A string, or a number written as one (YAML reads `PORT: 8080` as a number)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise InputError(f"spec: {field} must be a string or a number, not {value!r}")


def pairs(value: Any, field: str) -> dict[str, str]:
    """`{KEY: value}` or `["KEY=value"]`, as Compose takes environment and labels."""
    if value is None:
        return {}
    if isinstance(value, dict):
        found = {str(k): scalar(v, f"{field}.{k}") for k, v in value.items()}
    elif isinstance(value, list):
        found = {}
        for i, item in enumerate(value):
            key, equals, text = item.partition("=") if isinstance(item, str) else ("", "", "")
            if not key or not equals:
                raise InputError(f"spec: {field}[{i}] must be KEY=VALUE, not {item!r}")
            found[key] = text
    else:
        raise InputError(f"spec: {field} must be a map or a list of KEY=VALUE, not {value!r}")
    if "" in found:
        raise InputError(f"spec: {field} has an empty name")
    return found


def environment(value: Any) -> tuple[str, ...]:
    return tuple(f"{k}={v}" for k, v in pairs(value, "environment").items())


def labels(value: Any) -> dict[str, str]:
    found = pairs(value, "labels")
    reserved = sorted(k for k in found if k.startswith(LABEL_PREFIX))
    if reserved:
        raise InputError(
            f"spec: labels {', '.join(reserved)}: the {LABEL_PREFIX}* labels are treadle's own"
        )
    return found


def port_number(value: Any, field: str) -> int:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isdigit() or not 0 < int(text) < 65536:
        raise InputError(f"spec: {field} must be a port number (1-65535), not {value!r}")
    return int(text)


def port(value: Any, field: str) -> Port:
    """`8080`, `"8080/udp"`, `"9000:8080"`, `"127.0.0.1::8080"`, or Compose's long form
    `{target, published, host_ip, protocol, mode}`."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(PORT_FIELDS))
        if unknown or "target" not in value:
            raise InputError(
                f"spec: {field} takes {', '.join(PORT_FIELDS)} and needs target "
                f"(unknown: {', '.join(unknown) or 'none'})"
            )
        host_ip, protocol, mode = (
            value.get("host_ip"),
            value.get("protocol", "tcp"),
            value.get("mode"),
        )
        published = value.get("published")
        target = value["target"]
    elif isinstance(value, (int, str)) and not isinstance(value, bool):
        text, _, protocol = str(value).partition("/")
        parts = text.rsplit(":", 2)
        target = parts[-1]
        published = parts[-2] if len(parts) > 1 else None
        host_ip = parts[0] if len(parts) > 2 else None
        protocol, mode = protocol or "tcp", None
    else:
        raise InputError(f'spec: {field} must be a port like "8080" or an object, not {value!r}')
    if protocol not in PROTOCOLS:
        raise InputError(
            f"spec: {field} protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}"
        )
    if mode is not None and mode not in PUBLISH_MODES:
        raise InputError(f"spec: {field} mode must be ingress or host, not {mode!r}")
    if host_ip is not None and (not isinstance(host_ip, str) or not host_ip):
        raise InputError(
            f"spec: {field} host_ip must be an address like 127.0.0.1, not {host_ip!r}"
        )
    return Port(
        target=port_number(target, f"{field} target"),
        protocol=protocol,
        published=None if published in (None, "") else port_number(published, f"{field} published"),
        host_ip=host_ip,
        mode=mode,
    )


def duration(value: Any, field: str) -> int:
    """Nanoseconds from `1m30s`, `500ms`, `2s` (Compose's durations) or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value * 10**9)
    text = value.strip() if isinstance(value, str) else ""
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise InputError(f"spec: {field} must be a duration like 1s, 500ms or 1m30s, not {value!r}")
    return int(sum(float(n) * _NANOS[u] for n, u in parts))


def healthcheck(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(
            f"spec: healthcheck must be an object with test, interval, ..., not {value!r}"
        )
    unknown = sorted(set(value) - set(HEALTHCHECK_FIELDS))
    if unknown:
        raise InputError(
            f"spec: unknown healthcheck field(s) {', '.join(unknown)}: it takes "
            f"{', '.join(HEALTHCHECK_FIELDS)}"
        )
    if value.get("disable") is True:
        return {"Test": ["NONE"]}
    test = value.get("test")
    if isinstance(test, str) and test:
        test = ["CMD-SHELL", test]
    if not (
        isinstance(test, list)
        and test
        and all(isinstance(t, str) for t in test)
        and test[0] in ("CMD", "CMD-SHELL", "NONE")
    ):
        raise InputError(
            "spec: healthcheck.test must be a shell command string or a list starting with "
            f"CMD, CMD-SHELL or NONE, not {test!r}"
        )
    check: dict[str, Any] = {"Test": test}
    for field, key in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start_period", "StartPeriod"),
    ):
        if field in value:
            nanos = duration(value[field], f"healthcheck.{field}")
            # The engine refuses anything between 0 and 1ms.
            if nanos < 10**6:
                raise InputError(
                    f"spec: healthcheck.{field} must be 1ms or more, not {value[field]!r}"
                )
            check[key] = nanos
    if "retries" in value:
        retries = value["retries"]
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 1:
            raise InputError(
                f"spec: healthcheck.retries must be a whole number of 1 or more, not {retries!r}"
            )
        check["Retries"] = retries
    return check


def limits(spec: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(nano-CPUs, memory bytes) from `cpus`/`mem_limit` or Compose's
    `deploy.resources.limits`, not both."""
    deploy = spec.get("deploy")
    deploy_limits: dict[str, Any] = {}
    if deploy is not None:
        resources = deploy.get("resources") if isinstance(deploy, dict) else None
        found = resources.get("limits") if isinstance(resources, dict) else None
        if (
            not isinstance(found, dict)
            or set(deploy) != {"resources"}
            or set(resources or {}) != {"limits"}
            or not set(found) <= {"cpus", "memory"}
        ):
            raise InputError(
                "spec: deploy takes only resources.limits.cpus and resources.limits.memory "
                "(--instances sets the size)"
            )
        deploy_limits = found
    for short, long in (("cpus", "cpus"), ("mem_limit", "memory")):
        if short in spec and long in deploy_limits:
            raise InputError(f"spec: give {short} or deploy.resources.limits.{long}, not both")
    cpus = spec.get("cpus", deploy_limits.get("cpus"))
    memory = spec.get("mem_limit", deploy_limits.get("memory"))
    return (
        None if cpus is None else nano_cpus(cpus),
        None if memory is None else memory_bytes(memory),
    )


def nano_cpus(value: Any) -> int:
    try:
        cpus = float(value) if not isinstance(value, bool) else -1.0
    except (TypeError, ValueError):
        cpus = -1.0
    if not cpus > 0:
        raise InputError(f"spec: cpus must be a number of CPUs above 0 (0.5, 2), not {value!r}")
    return int(cpus * 10**9)


def memory_bytes(value: Any) -> int:
    """Bytes from `268435456`, `256m`, `1g`, `512MiB` (powers of 1024, as Docker counts)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _BYTES.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None or float(m[1]) <= 0:
        raise InputError(
            f"spec: memory limit must be bytes or a size like 256m or 1g, not {value!r}"
        )
    return int(float(m[1]) * 1024 ** _POWERS[m[2].lower()])
