"""The values of a Compose service's fields, checked and put in the Engine API's own
shapes and units (nanoseconds, bytes, nano-CPUs). Each parser raises InputError naming
the field (`spec: healthcheck.interval must be ...`)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from treadle.errors import InputError
from treadle.limits import MAX_CPUS
from treadle.providers.base import LABEL_PREFIX

HEALTHCHECK_FIELDS = ("test", "interval", "timeout", "retries", "start_period", "disable")
PORT_FIELDS = ("target", "published", "host_ip", "protocol", "mode", "name", "app_protocol")
PROTOCOLS = ("tcp", "udp", "sctp")
PUBLISH_MODES = ("ingress", "host")
RESTART = ("no", "always", "unless-stopped", "on-failure")
_NUMBER = re.compile(r"[0-9]*\.?[0-9]+(e[+-]?[0-9]+)?", re.IGNORECASE)
RESTART_CONDITIONS = {"none": "none", "on-failure": "on-failure", "any": "any"}

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


def refuse(field: str, why: str) -> InputError:
    return InputError(f"spec: {field} {why}")


def mapping(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise refuse(field, f"must be a mapping, not {value!r}")
    return value


def listed(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise refuse(field, f"must be a list, not {value!r}")
    return value


def scalar(value: Any, field: str) -> str:
    """A string, or a number written as one (YAML reads `PORT: 8080` as a number)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise refuse(field, f"must be a string or a number, not {value!r}")


def strings(value: Any, field: str) -> list[str]:
    """A string or a list of strings, as a list."""
    items = [value] if isinstance(value, str) else listed(value, field)
    return [scalar(v, f"{field}[{i}]") for i, v in enumerate(items)]


def boolean(value: Any, field: str) -> bool:
    """true or false (written as a string too, as interpolation leaves it)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise refuse(field, f"must be true or false, not {value!r}")


def choice(value: Any, field: str, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in allowed:
        raise refuse(field, f"must be {' or '.join(allowed)}, not {value!r}")
    return str(value)


def whole(value: Any, field: str, least: int = 0) -> int:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.lstrip("-").isdigit() or int(text) < least:
        raise refuse(field, f"must be a whole number of {least} or more, not {value!r}")
    return int(text)


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
                raise refuse(f"{field}[{i}]", f"must be KEY=VALUE, not {item!r}")
            found[key] = text
    else:
        raise refuse(field, f"must be a map or a list of KEY=VALUE, not {value!r}")
    if "" in found:
        raise refuse(field, "has an empty name")
    return found


def labels(value: Any, field: str = "labels") -> dict[str, str]:
    found = pairs(value, field)
    reserved = sorted(k for k in found if k.startswith(LABEL_PREFIX))
    if reserved:
        raise InputError(
            f"spec: {field} {', '.join(reserved)}: the {LABEL_PREFIX}* labels are treadle's own"
        )
    return found


def command(value: Any, field: str = "command") -> list[str]:
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as e:
            raise refuse(field, f"{value!r} cannot be split: {e}") from None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise refuse(field, f"must be a string or a list of strings, not {value!r}")


def port_number(value: Any, field: str) -> int:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isdigit() or not 0 < int(text) < 65536:
        raise refuse(field, f"must be a port number (1-65535), not {value!r}")
    return int(text)


def port(value: Any, field: str) -> Port:
    """`8080`, `"8080/udp"`, `"9000:8080"`, `"127.0.0.1::8080"`, or Compose's long form
    `{target, published, host_ip, protocol, mode}`."""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(PORT_FIELDS))
        if unknown or "target" not in value:
            raise InputError(
                f"spec: {field} takes {', '.join(PORT_FIELDS[:5])} and needs target "
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
        raise refuse(
            f"{field} protocol", f"must be one of {', '.join(PROTOCOLS)}, not {protocol!r}"
        )
    if mode is not None and mode not in PUBLISH_MODES:
        raise refuse(f"{field} mode", f"must be ingress or host, not {mode!r}")
    if host_ip is not None and (not isinstance(host_ip, str) or not host_ip):
        raise refuse(f"{field} host_ip", f"must be an address like 127.0.0.1, not {host_ip!r}")
    return Port(
        target=port_number(target, f"{field} target"),
        protocol=protocol,
        published=None if published in (None, "") else port_number(published, f"{field} published"),
        host_ip=host_ip,
        mode=mode,
    )


def expose(value: Any, field: str) -> str:
    """Docker's name for an exposed container port: `8080` -> `8080/tcp`."""
    text, _, protocol = scalar(value, field).partition("/")
    protocol = protocol or "tcp"
    if protocol not in PROTOCOLS:
        raise refuse(field, f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
    return f"{port_number(text, field)}/{protocol}"


def duration(value: Any, field: str) -> int:
    """Nanoseconds from `1m30s`, `500ms`, `2s` (Compose's durations) or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value * 10**9)
    text = value.strip() if isinstance(value, str) else ""
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise refuse(field, f"must be a duration like 1s, 500ms or 1m30s, not {value!r}")
    return int(sum(float(n) * _NANOS[u] for n, u in parts))


def healthcheck(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise refuse("healthcheck", f"must be an object with test, interval, ..., not {value!r}")
    unknown = sorted(set(value) - set(HEALTHCHECK_FIELDS))
    if unknown:
        raise InputError(
            f"spec: unknown healthcheck field(s) {', '.join(unknown)}: it takes "
            f"{', '.join(HEALTHCHECK_FIELDS)}"
        )
    if value.get("disable") in (True, "true"):
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
                raise refuse(f"healthcheck.{field}", f"must be 1ms or more, not {value[field]!r}")
            check[key] = nanos
    if "retries" in value:
        check["Retries"] = whole(value["retries"], "healthcheck.retries", 1)
    return check


def nano_cpus(value: Any, field: str = "cpus") -> int:
    text = str(value).strip() if isinstance(value, int | float | str) else ""
    cpus = float(text) if not isinstance(value, bool) and _NUMBER.fullmatch(text) else -1.0
    if not 0 < cpus < MAX_CPUS:
        raise refuse(field, f"must be a number of CPUs above 0 (0.5, 2), not {value!r}")
    return int(cpus * 10**9)


def memory_bytes(value: Any, field: str = "memory limit") -> int:
    """Bytes from `268435456`, `256m`, `1g`, `512MiB` (powers of 1024, as Docker counts)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = _BYTES.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None or float(m[1]) <= 0:
        raise refuse(field, f"must be bytes or a size like 256m or 1g, not {value!r}")
    return int(float(m[1]) * 1024 ** _POWERS[m[2].lower()])


def ulimits(value: Any) -> list[dict[str, Any]]:
    """`{nofile: {soft: 1024, hard: 2048}, nproc: 512}` as the Engine API's Ulimits."""
    found = []
    for name, limit in mapping(value, "ulimits").items():
        field = f"ulimits.{name}"
        if isinstance(limit, dict):
            if set(limit) != {"soft", "hard"}:
                raise refuse(field, "takes soft and hard")
            soft, hard = (
                whole(limit["soft"], f"{field}.soft"),
                whole(limit["hard"], f"{field}.hard"),
            )
        else:
            soft = hard = whole(limit, field)
        found.append({"Name": str(name), "Soft": soft, "Hard": hard})
    return found


def extra_hosts(value: Any) -> list[tuple[str, str]]:
    """(host, address) pairs from `["db:10.0.0.2"]`, `["db=10.0.0.2"]` or `{db: 10.0.0.2}`."""
    if isinstance(value, dict):
        found = []
        for host, address in value.items():
            for one in strings(address, f"extra_hosts.{host}"):
                found.append((str(host), one))
        return found
    found = []
    for i, item in enumerate(strings(value, "extra_hosts")):
        separator = "=" if "=" in item else ":"
        host, _, address = item.partition(separator)
        if not host or not address:
            raise refuse(f"extra_hosts[{i}]", f"must be HOST:ADDRESS, not {item!r}")
        found.append((host, address.strip("[]")))
    return found


def logging(value: Any) -> tuple[str, dict[str, str]]:
    """(driver, options): the driver "" is the engine's default."""
    found = mapping(value, "logging")
    unknown = sorted(set(found) - {"driver", "options"})
    if unknown:
        raise refuse("logging", f"takes driver and options, not {', '.join(unknown)}")
    options = {
        k: scalar(v, f"logging.options.{k}")
        for k, v in mapping(found.get("options"), "logging.options").items()
    }
    return scalar(found.get("driver", ""), "logging.driver"), options


def restart(value: Any) -> dict[str, Any]:
    """Docker's restart policy from `no`, `always`, `unless-stopped`, `on-failure[:N]`."""
    name, _, count = scalar(value, "restart").partition(":")
    if name not in RESTART or (count and name != "on-failure"):
        raise refuse(
            "restart", f"must be one of {', '.join(RESTART)} (on-failure[:N]), not {value!r}"
        )
    policy: dict[str, Any] = {"Name": name}
    if count:
        policy["MaximumRetryCount"] = whole(count, "restart")
    return policy


def restart_policy(value: Any) -> dict[str, Any]:
    """Swarm's RestartPolicy from `deploy.restart_policy`."""
    found = mapping(value, "deploy.restart_policy")
    field = "deploy.restart_policy"
    unknown = sorted(set(found) - {"condition", "delay", "max_attempts", "window"})
    if unknown:
        raise refuse(
            field, f"takes condition, delay, max_attempts and window, not {', '.join(unknown)}"
        )
    policy: dict[str, Any] = {}
    if "condition" in found:
        condition = found["condition"]
        if condition not in RESTART_CONDITIONS:
            raise refuse(
                f"{field}.condition", f"must be none, on-failure or any, not {condition!r}"
            )
        policy["Condition"] = RESTART_CONDITIONS[condition]
    if "delay" in found:
        policy["Delay"] = duration(found["delay"], f"{field}.delay")
    if "max_attempts" in found:
        policy["MaxAttempts"] = whole(found["max_attempts"], f"{field}.max_attempts")
    if "window" in found:
        policy["Window"] = duration(found["window"], f"{field}.window")
    return policy


def placement(value: Any) -> dict[str, Any]:
    """Swarm's Placement from `deploy.placement`."""
    found = mapping(value, "deploy.placement")
    field = "deploy.placement"
    unknown = sorted(set(found) - {"constraints", "preferences", "max_replicas_per_node"})
    if unknown:
        raise refuse(
            field,
            f"takes constraints, preferences and max_replicas_per_node, not {', '.join(unknown)}",
        )
    result: dict[str, Any] = {}
    if "constraints" in found:
        result["Constraints"] = strings(found["constraints"], f"{field}.constraints")
    preferences = []
    for i, preference in enumerate(listed(found.get("preferences"), f"{field}.preferences")):
        spread = preference.get("spread") if isinstance(preference, dict) else None
        if not isinstance(spread, str):
            raise refuse(
                f"{field}.preferences[{i}]",
                f"must be {{spread: node.labels.NAME}}, not {preference!r}",
            )
        preferences.append({"Spread": {"SpreadDescriptor": spread}})
    if preferences:
        result["Preferences"] = preferences
    if "max_replicas_per_node" in found:
        result["MaxReplicas"] = whole(
            found["max_replicas_per_node"], f"{field}.max_replicas_per_node", 1
        )
    return result
