"""The cluster lease's records on the Docker engine: a container created from an empty
image and never started, named after the cluster (`web-prod.lease`, with the region's
prefix outside the default region) so that the engine makes one atomically. Container
labels cannot change, so the expiry a holder renews is a small file in the container
(copied in and out through the archive API, which works on a container that never ran)."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import docker.errors

from treadle.providers.base import LABEL_LEASE_EXPIRES, Lease, LeaseKey
from treadle.providers.engine import spec
from treadle.providers.engine.connection import translated

if TYPE_CHECKING:
    from treadle.providers.engine.connection import Engine

# An image of no files at all, made on the engine when missing: a container needs one.
LEASE_IMAGE = "treadle-lease:1"
LABEL_LEASE = "treadle.lease"
EXPIRY_FILE = "lease.json"


def lease_name(key: LeaseKey) -> str:
    name = f"{key.cluster}.lease" + (f".{key.claim}" if key.claim else "")
    return spec.resource_name(key.region, name)


def _tar(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ContainerLeases:
    """The lease part of the Docker provider."""

    api: Engine

    def lease(self, key: LeaseKey) -> Lease | None:
        with translated(f"reading the cluster lease of {key.cluster} in {key.region}"):
            try:
                inspected = self.api.inspect_container(lease_name(key))
            except docker.errors.NotFound:
                return None
            labels: dict[str, str] = dict(inspected["Config"]["Labels"] or {})
            expires = self._renewed(inspected["Id"]) or labels.get(LABEL_LEASE_EXPIRES, "")
        return Lease(key, inspected["Id"], labels, expires)

    def _renewed(self, container_id: str) -> str | None:
        try:
            chunks, _ = self.api.get_archive(container_id, "/" + EXPIRY_FILE)
        except docker.errors.NotFound:
            return None
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
            member = tar.next()
            found = tar.extractfile(member) if member is not None else None
            if found is None:
                return None
            try:
                expires = json.loads(found.read()).get("expires")
            except ValueError:
                return None
        return expires if isinstance(expires, str) else None

    def create_lease(self, key: LeaseKey, labels: Mapping[str, str], expires: str) -> Lease | None:
        record = {
            **labels,
            spec.LABEL_REGION: key.region,
            LABEL_LEASE: key.cluster,
            LABEL_LEASE_EXPIRES: expires,
        }
        config: dict[str, Any] = {"Image": LEASE_IMAGE, "Cmd": ["lease"], "Labels": record}
        with translated(f"taking the cluster lease of {key.cluster} in {key.region}"):
            try:
                created = self._create_lease(lease_name(key), config)
            except docker.errors.APIError as e:
                if e.status_code == 409:
                    return None
                raise
        return Lease(key, created, record, expires)

    def _create_lease(self, name: str, config: dict[str, Any]) -> str:
        try:
            created = self.api.create_container_from_config(config, name=name)
        except docker.errors.ImageNotFound:
            repository, _, tag = LEASE_IMAGE.partition(":")
            self.api.import_image_from_data(_tar(".keep", b""), repository=repository, tag=tag)
            created = self.api.create_container_from_config(config, name=name)
        container_id: str = created["Id"]
        return container_id

    def renew_lease(self, lease: Lease, expires: str) -> bool:
        data = json.dumps({"expires": expires}).encode()
        with translated(f"renewing the cluster lease of {lease.key.cluster}"):
            try:
                return bool(self.api.put_archive(lease.id, "/", _tar(EXPIRY_FILE, data)))
            except docker.errors.NotFound:
                return False

    def delete_lease(self, lease: Lease) -> None:
        with translated(f"releasing the cluster lease of {lease.key.cluster}"):
            try:
                self.api.remove_container(lease.id, force=True)
            except docker.errors.NotFound:
                pass
