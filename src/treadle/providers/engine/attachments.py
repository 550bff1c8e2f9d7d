"""What a service attaches to beyond itself: networks (with aliases), volumes (named, bind,
tmpfs), and on Swarm secrets and configs; and the top-level declarations that say how
to make the missing ones (Declared).

A Compose file names them by key; the engine knows them by name: the declaration's
`name`, else the key (treadle has no project to prefix them with). A spec that is one
service's mapping has no declarations: its networks and named volumes are made with the
engine's defaults when missing, its secrets and configs must exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treadle.errors import InputError
from treadle.providers.engine import fields
from treadle.providers.engine.fields import refuse

NETWORK_FIELDS = ("aliases", "priority")
VOLUME_MODES = ("ro", "rw", "z", "Z", "cached", "delegated", "consistent", "nocopy")
PROPAGATION = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
# Compose's defaults for a secret's or config's file in the container.
SECRET_MODE = 0o444
SECRETS_DIR = "/run/secrets/"


@dataclass(frozen=True)
class Network:
    name: str
    aliases: tuple[str, ...] = ()


@dataclass
class Declared:
    """What a server group needs to exist before its containers start, by engine name:
    each a dict with `external` (must exist already), `labels`, and per kind `driver`,
    `driver_opts` (networks, volumes), `internal`, `attachable` (networks), `file`,
    `environment`, `content` (where a secret's or config's data comes from)."""

    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)
    secrets: dict[str, dict[str, Any]] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_json(self) -> dict[str, dict[str, dict[str, Any]]]:
        found = {
            "networks": self.networks,
            "volumes": self.volumes,
            "secrets": self.secrets,
            "configs": self.configs,
        }
        return {kind: entries for kind, entries in found.items() if entries}


def declaration(
    declared: dict[str, Any], kind: str, key: str, *, implicit: bool
) -> tuple[str, dict[str, Any]]:
    """(engine name, how to make it) of what the service calls `key`; `implicit`: made
    with the defaults when the spec does not declare it."""
    found = (declared.get(kind) or {}).get(key)
    if found is None:
        return key, {"external": not implicit}
    entry = fields.mapping(found, f"{kind}.{key}")
    external = entry.get("external", False)
    if isinstance(external, dict):  # Compose's old `external: {name: ...}`
        entry = {**entry, "name": external.get("name", entry.get("name", key))}
        external = True
    name = fields.scalar(entry.get("name", key), f"{kind}.{key}.name")
    made = {
        "external": fields.boolean(external, f"{kind}.{key}.external"),
        "labels": fields.labels(entry.get("labels"), f"{kind}.{key}.labels"),
    }
    for option in ("driver", "file", "environment", "content"):
        if entry.get(option) is not None:
            made[option] = fields.scalar(entry[option], f"{kind}.{key}.{option}")
    if entry.get("driver_opts"):
        made["driver_opts"] = fields.pairs(entry["driver_opts"], f"{kind}.{key}.driver_opts")
    for flag in ("internal", "attachable"):
        if flag in entry:
            made[flag] = fields.boolean(entry[flag], f"{kind}.{key}.{flag}")
    return name, made


def networks(value: Any, declared: dict[str, Any], into: Declared) -> tuple[Network, ...]:
    """`[backend]` or `{backend: {aliases: [db]}}`, highest `priority` first."""
    entries = (
        {str(k): None for k in value}
        if isinstance(value, list)
        else fields.mapping(value, "networks")
    )
    found: list[tuple[int, int, Network]] = []
    for key, options in entries.items():
        where = f"networks.{key}"
        options = fields.mapping(options, where)
        unknown = sorted(set(options) - set(NETWORK_FIELDS))
        if unknown:
            raise refuse(where, f"takes {' and '.join(NETWORK_FIELDS)}, not {', '.join(unknown)}")
        name, made = declaration(declared, "networks", key, implicit=True)
        into.networks[name] = made
        aliases = tuple(fields.strings(options.get("aliases") or [], f"{where}.aliases"))
        priority = fields.whole(options.get("priority", 0), f"{where}.priority")
        found.append((-priority, len(found), Network(name, aliases)))
    return tuple(network for _, _, network in sorted(found))


def mounts(
    volumes: Any, tmpfs: Any, declared: dict[str, Any], into: Declared
) -> list[dict[str, Any]]:
    """The Engine API's Mounts (the same for a container and a Swarm task) of a service's
    `volumes` and `tmpfs`."""
    found = [
        mount(v, f"volumes[{i}]", declared, into)
        for i, v in enumerate(fields.listed(volumes, "volumes"))
    ]
    for i, target in enumerate(fields.strings(tmpfs or [], "tmpfs")):
        path, _, options = target.partition(":")
        if options:
            raise refuse(
                f"tmpfs[{i}]", "takes a path; give size and mode in a volumes entry of type tmpfs"
            )
        found.append({"Type": "tmpfs", "Target": path})
    return found


def mount(value: Any, where: str, declared: dict[str, Any], into: Declared) -> dict[str, Any]:
    if isinstance(value, str):
        parts = value.split(":")
        if len(parts) == 1:
            return {"Type": "volume", "Target": parts[0]}
        if len(parts) > 3:
            raise refuse(where, f"must be SOURCE:TARGET[:MODE], not {value!r}")
        mode = parts[2] if len(parts) == 3 else ""
        modes = mode.split(",") if mode else []
        if any(m not in VOLUME_MODES for m in modes):
            raise refuse(where, f"mode must be among {', '.join(VOLUME_MODES)}, not {mode!r}")
        kind = "bind" if parts[0].startswith((".", "/", "~")) else "volume"
        long: dict[str, Any] = {"type": kind, "source": parts[0], "target": parts[1]}
        if "ro" in modes:
            long["read_only"] = True
        if "nocopy" in modes:
            long["volume"] = {"nocopy": True}
        value = long
    entry = fields.mapping(value, where)
    kind = entry.get("type", "volume")
    target: Any = entry.get("target")
    if not isinstance(target, str) or not target.startswith("/"):
        raise refuse(
            f"{where}.target", f"must be an absolute path in the container, not {target!r}"
        )
    result: dict[str, Any] = {"Type": kind, "Target": target}
    if fields.boolean(entry.get("read_only", False), f"{where}.read_only"):
        result["ReadOnly"] = True
    source: Any = entry.get("source")
    if kind == "volume":
        if source:
            name, made = declaration(declared, "volumes", str(source), implicit=True)
            into.volumes[name] = made
            result["Source"] = name
            options: dict[str, Any] = {}
            if made.get("driver") or made.get("driver_opts"):
                # So that a Swarm node without the volume makes it as declared.
                options["DriverConfig"] = {
                    "Name": made.get("driver", "local"),
                    "Options": made.get("driver_opts", {}),
                }
            volume = fields.mapping(entry.get("volume"), f"{where}.volume")
            if volume.get("nocopy"):
                options["NoCopy"] = fields.boolean(volume["nocopy"], f"{where}.volume.nocopy")
            if options:
                result["VolumeOptions"] = options
    elif kind == "bind":
        if not isinstance(source, str) or not source:
            raise refuse(f"{where}.source", "must name the host path of a bind mount")
        result["Source"] = str(Path(source).expanduser().resolve())
        propagation = fields.mapping(entry.get("bind"), f"{where}.bind").get("propagation")
        if propagation is not None:
            if propagation not in PROPAGATION:
                raise refuse(
                    f"{where}.bind.propagation", f"must be one of {', '.join(PROPAGATION)}"
                )
            result["BindOptions"] = {"Propagation": propagation}
    elif kind == "tmpfs":
        options = fields.mapping(entry.get("tmpfs"), f"{where}.tmpfs")
        tmpfs: dict[str, Any] = {}
        if "size" in options:
            tmpfs["SizeBytes"] = fields.memory_bytes(options["size"], f"{where}.tmpfs.size")
        if "mode" in options:
            tmpfs["Mode"] = file_mode(options["mode"], f"{where}.tmpfs.mode")
        if tmpfs:
            result["TmpfsOptions"] = tmpfs
    else:
        raise refuse(f"{where}.type", f"must be volume, bind or tmpfs, not {kind!r}")
    return result


def file_mode(value: Any, where: str) -> int:
    """A file mode: 0440 as a number (YAML's 0o440 or 288), or "0440" as a string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value, 8)
    raise refuse(where, f"must be a file mode like 0440, not {value!r}")


def files(kind: str, value: Any, declared: dict[str, Any], into: Declared) -> list[dict[str, Any]]:
    """Swarm's SecretReferences or ConfigReferences (without the ids, which the swarm
    gives once they exist): `[token]` or `[{source, target, uid, gid, mode}]`."""
    found = []
    for i, reference in enumerate(fields.listed(value, kind)):
        where = f"{kind}[{i}]"
        entry = reference if isinstance(reference, dict) else {"source": reference}
        unknown = sorted(set(entry) - {"source", "target", "uid", "gid", "mode"})
        if unknown or not entry.get("source"):
            raise refuse(
                where,
                f"takes source, target, uid, gid and mode (unknown: {', '.join(unknown) or 'none'})",
            )
        key = fields.scalar(entry["source"], f"{where}.source")
        name, made = declaration(declared, kind, key, implicit=False)
        check_source(kind, key, made)
        getattr(into, kind)[name] = made
        default = key if kind == "secrets" else "/" + key
        target = fields.scalar(entry.get("target", default), f"{where}.target")
        file = {
            "Name": target,
            "UID": fields.scalar(entry.get("uid", "0"), f"{where}.uid"),
            "GID": fields.scalar(entry.get("gid", "0"), f"{where}.gid"),
            "Mode": file_mode(entry.get("mode", SECRET_MODE), f"{where}.mode"),
        }
        noun = "Secret" if kind == "secrets" else "Config"
        found.append({f"{noun}Name": name, "File": file})
    return found


def check_source(kind: str, key: str, made: dict[str, Any]) -> None:
    """A secret or config made when missing needs its data at hand: its file, or its
    environment variable, is checked before anything is made."""
    if made["external"]:
        return
    if "file" in made:
        if not os.path.isfile(made["file"]):
            raise InputError(f"spec: {kind}.{key}: the file {made['file']} does not exist")
    elif "environment" in made:
        if made["environment"] not in os.environ:
            raise InputError(f"spec: {kind}.{key}: the variable {made['environment']} is not set")
    elif "content" not in made or kind == "secrets":
        ways = "file or environment" if kind == "secrets" else "file, environment or content"
        raise InputError(f"spec: {kind}.{key} says neither {ways}, nor external: true")
