"""The cluster lease's records on Swarm: a service of no replicas, named after the
cluster (`web-prod-lease`, with the region's prefix outside the default region) so that
the swarm makes one atomically, cluster-wide whichever manager treadle talks to. Its
labels hold the holder and the expiry; a renewal is an update of its labels at the
version read, so that it fails if anyone else changed the record meanwhile."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import docker.errors

from treadle.naming import MAX_NAME
from treadle.providers.base import LABEL_LEASE_EXPIRES, Lease, LeaseKey
from treadle.providers.engine import spec
from treadle.providers.engine.connection import translated
from treadle.providers.swarm.services import update

if TYPE_CHECKING:
    from treadle.providers.engine.connection import Engine

LABEL_LEASE = "treadle.lease"
# Never run (no replicas), so never pulled.
LEASE_IMAGE = "treadle-lease:1"


def lease_name(key: LeaseKey) -> str:
    """Swarm takes letters, digits and `-` in a service name, at most 63 of them."""
    name = f"{key.cluster}-lease" + (f"-{key.claim}" if key.claim else "")
    full = spec.resource_name(key.region, name)
    if len(full) > MAX_NAME:
        full = f"treadle-lease-{hashlib.sha256(full.encode()).hexdigest()[:24]}"
    return full


class ServiceLeases:
    """The lease part of the Swarm provider."""

    api: Engine

    def _lease_service(self, key: LeaseKey) -> dict[str, Any] | None:
        try:
            service: dict[str, Any] = self.api.inspect_service(lease_name(key))
        except docker.errors.NotFound:
            return None
        return service

    def lease(self, key: LeaseKey) -> Lease | None:
        with translated(f"reading the cluster lease of {key.cluster} in {key.region}"):
            service = self._lease_service(key)
        if service is None:
            return None
        labels = dict(service["Spec"].get("Labels") or {})
        return Lease(key, service["ID"], labels, labels.get(LABEL_LEASE_EXPIRES, ""))

    def create_lease(self, key: LeaseKey, labels: Mapping[str, str], expires: str) -> Lease | None:
        record = {
            **labels,
            spec.LABEL_REGION: key.region,
            LABEL_LEASE: key.cluster,
            LABEL_LEASE_EXPIRES: expires,
        }
        with translated(f"taking the cluster lease of {key.cluster} in {key.region}"):
            try:
                created = self.api.create_service(
                    {"ContainerSpec": {"Image": LEASE_IMAGE}},
                    name=lease_name(key),
                    labels=record,
                    mode={"Replicated": {"Replicas": 0}},
                )
            except docker.errors.APIError as e:
                if e.status_code == 409:
                    return None
                raise
        return Lease(key, created["ID"], record, expires)

    def renew_lease(self, lease: Lease, expires: str) -> bool:
        with translated(f"renewing the cluster lease of {lease.key.cluster}"):
            service = self._lease_service(lease.key)
            if service is None or service["ID"] != lease.id:
                return False
            current = service["Spec"]
            try:
                update(
                    self.api,
                    service,
                    labels={**current.get("Labels", {}), LABEL_LEASE_EXPIRES: expires},
                    mode=current["Mode"],
                )
            except docker.errors.NotFound:
                return False
        return True

    def delete_lease(self, lease: Lease) -> None:
        with translated(f"releasing the cluster lease of {lease.key.cluster}"):
            try:
                self.api.remove_service(lease.id)
            except docker.errors.NotFound:
                pass
