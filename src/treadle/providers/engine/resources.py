"""Making what a server group or a job needs before it runs: the networks, named volumes,
secrets and configs its spec declares (treadle.providers.engine.attachments.Declared).

What exists already is used as it is (a secret's or config's content is never compared:
the swarm keeps it immutable, so a changed one needs a new name, as in Compose); what is
missing is made, labelled with the region, cluster and server group (or job) that made it.
treadle never removes any of them: other server groups, of this cluster or others, may
use them. An `external` one that is missing stops the stage before anything is made.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.errors

from treadle.errors import InputError
from treadle.providers.base import LABEL_CLUSTER, LABEL_VERSION
from treadle.providers.engine import jobs, spec

if TYPE_CHECKING:
    from treadle.providers.engine.connection import Engine

# The labels of a server group (or a job run) that say who made a resource.
PROVENANCE = (
    spec.LABEL_REGION,
    LABEL_CLUSTER,
    spec.LABEL_SERVER_GROUP,
    LABEL_VERSION,
    jobs.LABEL_JOB,
    jobs.LABEL_JOB_RUN,
)
KINDS = ("networks", "volumes", "secrets", "configs")


def provenance(labels: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k in PROVENANCE}


def missing_external(api: Engine, declared: Mapping[str, Any], swarm: bool) -> None:
    """InputError for the first `external` declaration the engine lacks."""
    for kind in KINDS:
        for name, made in (declared.get(kind) or {}).items():
            if made.get("external") and not exists(api, kind, name):
                where = "swarm" if swarm else "Docker engine"
                raise InputError(
                    f"spec: {kind} {name} is external, and the {where} has none of that name: "
                    f"make it first, or declare it without external: true"
                )


def ensure(
    api: Engine, declared: Mapping[str, Any], labels: Mapping[str, str], *, swarm: bool
) -> dict[str, str]:
    """Make the declared resources that are missing; the ids of the secrets and configs
    (by name), which a Swarm service refers to them by."""
    missing_external(api, declared, swarm)
    own = provenance(labels)
    ids: dict[str, str] = {}
    for kind in KINDS:
        for name, made in (declared.get(kind) or {}).items():
            found = exists(api, kind, name)
            if found is None:
                found = create(api, kind, name, made, {**made.get("labels", {}), **own}, swarm)
            ids[f"{kind}/{name}"] = found
    return ids


def exists(api: Engine, kind: str, name: str) -> str | None:
    """The id of the resource of that exact name, None when there is none (the engine's
    name filters match parts of names too)."""
    if kind == "networks":
        listed = api.networks(names=[name])
        return next((n["Id"] for n in listed if n["Name"] == name), None)
    if kind == "volumes":
        volumes = (api.volumes(filters={"name": name}) or {}).get("Volumes") or []
        return next((v["Name"] for v in volumes if v["Name"] == name), None)
    listing = api.secrets if kind == "secrets" else api.configs
    return next(
        (s["ID"] for s in listing(filters={"name": name}) if s["Spec"]["Name"] == name), None
    )


def create(
    api: Engine, kind: str, name: str, made: Mapping[str, Any], labels: dict[str, str], swarm: bool
) -> str:
    """Make one; one made meanwhile by someone else (a concurrent deploy) is used."""
    try:
        if kind == "networks":
            created = api.create_network(
                name,
                driver=made.get("driver") or ("overlay" if swarm else "bridge"),
                options=made.get("driver_opts"),
                internal=made.get("internal", False),
                labels=labels,
                # On Swarm, so that plain containers (a sidecar, a job) may join it too.
                attachable=made.get("attachable", swarm) or None,
                check_duplicate=True,
            )
            return str(created["Id"])
        if kind == "volumes":
            volume = api.create_volume(
                name, driver=made.get("driver"), driver_opts=made.get("driver_opts"), labels=labels
            )
            return str(volume["Name"])
        data = content(kind, name, made)
        if kind == "secrets":
            return str(api.create_secret(name, data, labels=labels)["ID"])
        return str(api.create_config(name, data, labels=labels)["ID"])
    except docker.errors.APIError as e:
        if e.status_code == 409:
            found = exists(api, kind, name)
            if found is not None:
                return found
        raise


def content(kind: str, name: str, made: Mapping[str, Any]) -> bytes:
    """A secret's or config's data: its file's, its environment variable's, or (a config)
    the content written in the spec."""
    if "file" in made:
        return Path(made["file"]).read_bytes()
    if "environment" in made:
        return os.environ.get(made["environment"], "").encode()
    if "content" in made:
        return str(made["content"]).encode()
    raise InputError(f"spec: {kind}.{name} says neither file, environment nor content")
