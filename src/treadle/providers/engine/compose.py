"""One service of a Compose file as a Docker or Swarm spec (`--spec compose.yaml --service
web`), read as `docker compose` reads it: variables interpolated from the environment and
a `.env` file beside the Compose file (the environment wins), then the whole file checked
against the Compose Specification's JSON schema, then the service picked out.

What the service needs from the rest of the file comes along under DECLARED: the
networks, named volumes, secrets and configs that it uses and the file declares at the
top level, with relative file paths made absolute. The service's `env_file`s are read
into its `environment` (which wins), so that what a server group is made from (and its
spec digest) holds their content. The other services of the file are not deployed.

The schema is the one check-jsonschema ships (`vendor/compose-spec.json`, kept in step
with the compose-spec project); it is read, and jsonschema imported, only when a Compose
file is given.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from treadle import limits
from treadle.errors import InputError
from treadle.providers.engine.interpolation import interpolate, parse_env_file

# Where a service spec keeps the top-level declarations it uses (an extension field, which
# Compose allows anywhere).
DECLARED = "x-treadle-declared"
KINDS = ("networks", "volumes", "secrets", "configs")
DOTENV = ".env"
SCHEMA_PACKAGE = "check_jsonschema"
SCHEMA_FILE = ("builtin_schemas", "vendor", "compose-spec.json")
# A schema error quotes the offending value: at most this much of it.
_SHOWN_CHARS = 160


def is_compose(document: Mapping[str, Any]) -> bool:
    """A Compose file (its services under `services`), not one service's mapping."""
    return isinstance(document.get("services"), dict)


def load_service(
    document: Mapping[str, Any],
    path: str,
    service: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    warn: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The service `service` of the Compose file `document` (read from `path`), ready for
    the spec parser; InputError names what to fix."""
    what = f"compose file {path}"
    base = Path(path).parent if path != "-" else Path.cwd()
    environ = dict(os.environ if environ is None else environ)
    dotenv = base / DOTENV
    env = {**read_env_file(dotenv, environ, DOTENV), **environ} if dotenv.is_file() else environ
    unset: dict[str, None] = {}
    try:
        document = interpolate(dict(document), env, "", lambda name: unset.setdefault(name))
    except InputError as e:
        raise InputError(f"{what}: {e}") from None
    if unset and warn is not None:
        warn(f"{what}: {', '.join(unset)} unset, taken as empty")
    validate(document, what)
    services: dict[str, Any] = document["services"]
    if service is None:
        if len(services) != 1:
            raise InputError(
                f"{what} holds the services {', '.join(services)}: choose one with --service"
            )
        service = next(iter(services))
    if service not in services:
        raise InputError(
            f"{what} has no service {service!r}: it has {', '.join(services) or 'none'}"
        )
    found = dict(services[service] or {})
    where = f"{what}: services.{service}"
    if "env_file" in found:
        from_files = read_env_files(found.pop("env_file"), base, env, where)
        found["environment"] = {**from_files, **pairs_of(found.get("environment"))}
    if "environment" in found:
        # A variable named without a value takes the environment's, as in Compose.
        given = pairs_of(found["environment"])
        found["environment"] = {
            k: env[k] if v is None else v for k, v in given.items() if v is not None or k in env
        }
    found["volumes"] = [bind_absolute(v, base) for v in found.get("volumes") or []]
    if not found["volumes"]:
        del found["volumes"]
    found[DECLARED] = declared(document, found, base, where)
    return found


def validate(document: Mapping[str, Any], what: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = list(leaves(validator.iter_errors(document)))
    if errors:
        # The deepest error says most; one about properties that no branch of an allOf
        # took is only a consequence of an error inside that branch.
        error = max(
            errors, key=lambda e: (e.validator != "unevaluatedProperties", len(e.absolute_path))
        )
        at = ".".join(str(p) for p in error.absolute_path) or "the top"
        message = error.message
        if len(message) > _SHOWN_CHARS:
            message = message[: _SHOWN_CHARS - 3] + "..."
        raise InputError(f"{what}: {at}: {message} (the Compose Specification's schema)")


def leaves(errors: Iterable[Any]) -> Iterator[Any]:
    """The errors that no other error explains (anyOf, oneOf and allOf keep theirs in
    `context`)."""
    for error in errors:
        if error.context:
            yield from leaves(error.context)
        else:
            yield error


@functools.cache
def schema() -> dict[str, Any]:
    """The Compose Specification's JSON schema, found without importing its package (which
    would load a whole command line tool)."""
    found = importlib.util.find_spec(SCHEMA_PACKAGE)
    folders = list(found.submodule_search_locations or []) if found else []
    for folder in folders:
        file = Path(folder).joinpath(*SCHEMA_FILE)
        if file.is_file():
            loaded: dict[str, Any] = json.loads(file.read_text())
            return loaded
    raise InputError(
        "the Compose Specification's schema is missing: it ships with check-jsonschema, "
        "which treadle depends on (pip install check-jsonschema)"
    )


def read_env_file(
    path: Path, env: Mapping[str, str], where: str, *, raw: bool = False
) -> dict[str, str]:
    raw_bytes = limits.read_document(str(path), f"env file {where}")
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"env file {path}: not UTF-8 text (byte {e.start})") from None
    return parse_env_file(text, env, f"env file {path}", raw=raw)


def read_env_files(value: Any, base: Path, env: Mapping[str, str], where: str) -> dict[str, str]:
    """A service's `env_file` (a path, a list of paths, or `{path, required, format}`
    entries) read in order, later files winning; relative paths from `base`."""
    entries = value if isinstance(value, list) else [value]
    found: dict[str, str] = {}
    for entry in entries:
        item = entry if isinstance(entry, dict) else {"path": entry}
        if not isinstance(item.get("path"), str):
            raise InputError(f"{where}: env_file entries are paths, not {entry!r}")
        file = base / Path(item["path"]).expanduser()
        if not file.is_file():
            if item.get("required", True) in (False, "false"):
                continue
            raise InputError(f"{where}: env_file {item['path']} does not exist ({file})")
        raw = item.get("format") == "raw"
        found.update(read_env_file(file, env, item["path"], raw=raw))
    return found


def pairs_of(value: Any) -> dict[str, Any]:
    """`{KEY: value}` or `["KEY=value"]` (a bare `KEY` has no value: None)."""
    if isinstance(value, dict):
        return dict(value)
    found: dict[str, Any] = {}
    for item in value or []:
        key, equals, text = str(item).partition("=")
        found[key] = text if equals else None
    return found


def bind_absolute(volume: Any, base: Path) -> Any:
    """A bind mount's relative host path (`./data:/data`, `{type: bind, source: ./data}`)
    made absolute from `base`, as Compose does."""
    if isinstance(volume, str):
        source, colon, rest = volume.partition(":")
        if colon and source.startswith((".", "~")):
            return f"{resolved(source, base)}:{rest}"
        return volume
    if isinstance(volume, dict) and volume.get("type") == "bind" and volume.get("source"):
        return {**volume, "source": resolved(volume["source"], base)}
    return volume


def resolved(path: str, base: Path) -> str:
    return str((base / Path(path).expanduser()).resolve())


def declared(
    document: Mapping[str, Any], service: Mapping[str, Any], base: Path, where: str
) -> dict[str, dict[str, Any]]:
    """The top-level declarations the service uses, by kind and by the key it names them
    by; a name the file does not declare is an error, as in Compose."""
    used = {
        "networks": list(service.get("networks") or []),
        "volumes": [s for s in map(volume_source, service.get("volumes") or []) if s],
        "secrets": [source_of(s) for s in service.get("secrets") or []],
        "configs": [source_of(s) for s in service.get("configs") or []],
    }
    found: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        top = document.get(kind) or {}
        for key in used[kind]:
            if key not in top:
                raise InputError(
                    f"{where}.{kind}: {key} is not declared under the file's top-level {kind}"
                )
            entry = dict(top[key] or {})
            entry.setdefault("name", key)
            if isinstance(entry.get("file"), str):
                entry["file"] = resolved(entry["file"], base)
            found.setdefault(kind, {})[key] = entry
    return found


def volume_source(volume: Any) -> str | None:
    """The named volume a service's volume entry mounts, None for a bind, tmpfs or
    anonymous one."""
    if isinstance(volume, str):
        source, colon, _ = volume.partition(":")
        named = colon and source and not source.startswith((".", "/", "~"))
        return source if named else None
    if isinstance(volume, dict) and volume.get("type", "volume") == "volume":
        given = volume.get("source")
        return given if isinstance(given, str) and given else None
    return None


def source_of(reference: Any) -> str:
    """A secret or config reference: `token`, or `{source: token, target: ...}`."""
    return str(reference.get("source") if isinstance(reference, dict) else reference)
