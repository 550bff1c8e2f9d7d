"""The local Docker engine: a server group is a set of containers.

    web-prod-v003       the definition container: created and never started. It holds
                        the group's definition and records (LABEL_DISABLED_INSTANCES once
                        disabled), so that a group of 0 instances or a disabled one exists
    web-prod-v003-1     its instances, numbered in the order they were made: copies of
    web-prod-v003-2     the definition container, started

Outside the default region every name starts with `<region>_`. treadle finds containers
by their labels (treadle.region, treadle.server-group and the LABEL_* of base.py), never
by name; names only keep regions apart. Instances restart unless stopped; disabling a
group stops them and keeps them, enabling starts them again. Container labels cannot
change: new records replace the definition container. Jobs: treadle.providers.docker.jobs;
the cluster lease: treadle.providers.docker.leases.

On a cluster's network (ALIAS) the engine sets a container's aliases only as it connects
it, and drops one from an alias only when it stops or leaves the network. So an instance
starts on the network without the cluster's alias and is connected again with it once
healthy (join), when it has served nothing yet. Taken out of service it is stopped, which
lets it finish what it serves (its stop signal, then its grace period) before the engine
drops it from the alias; leaving the network while it runs would cut those requests off
(they hang until the client gives up). Stopped, it is connected again without the alias,
so that it starts outside it; one kept running (KEEP_RUNNING) is then started again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import docker.errors

from treadle.console import Console
from treadle.errors import AlreadyExists, ProviderError, ServerGroupGone, StageFailed
from treadle.naming import Cluster
from treadle.providers.base import (
    ALIAS,
    DECREMENT_CHOSEN,
    ENDPOINTS,
    EVENTS,
    JOB_EVENTS,
    JOBS,
    KEEP_RUNNING,
    LABEL_CLUSTER,
    LABEL_DISABLED_INSTANCES,
    LABEL_KEPT_RUNNING,
    LABEL_NETWORK,
    TERMINATE,
    Health,
    Instance,
    JobRun,
    NewServerGroup,
    Records,
    ServerGroup,
    merged,
)
from treadle.providers.docker.containers import (
    LABEL_INSTANCE,
    Containers,
    aliases_on,
    container_config,
    copy_config,
    definition_labels,
    endpoint_aliases,
    networks_of,
    number,
    outside_alias,
)
from treadle.providers.docker.health import InstanceHealth
from treadle.providers.docker.jobs import ContainerJobs
from treadle.providers.docker.leases import ContainerLeases
from treadle.providers.engine import resources, spec
from treadle.providers.engine.connection import connect, translated
from treadle.providers.engine.events import EngineEvents, group_key
from treadle.waiting import Deadline, Wakeup

__all__ = ["DockerProvider"]

ACTIVE = ("running", "restarting")


class DockerProvider(ContainerJobs, ContainerLeases):
    name = "docker"
    default_region = spec.DEFAULT_REGION
    capabilities = frozenset(
        {JOBS, EVENTS, JOB_EVENTS, TERMINATE, DECREMENT_CHOSEN, ALIAS, KEEP_RUNNING, ENDPOINTS}
    )

    def __init__(
        self,
        settings: object = None,
        *,
        deadline: Deadline,
        console: Console,
        request_timeout: float = 60.0,
    ) -> None:
        self.api = connect(deadline, request_timeout, console)
        self.console = console
        # Restart count of each instance when treadle last started it or first saw it.
        self._health = InstanceHealth()

    def close(self) -> None:
        if "events" in self.__dict__:
            self.events.close()
        self.api.close()

    @functools.cached_property
    def events(self) -> EngineEvents:
        """The engine's events, followed from the first wait on."""
        return EngineEvents(self.console)

    def watch(self, group: ServerGroup) -> AbstractContextManager[Wakeup | None]:
        return self.events.watching(group_key(group.region, group.name))

    def watch_job(self, run: JobRun) -> AbstractContextManager[Wakeup | None]:
        return self.events.watching(run.run_id)

    def check_region(self, region: str) -> str:
        return spec.check_region(region)

    # --- reading ------------------------------------------------------------------------

    def _list(
        self, region: str, server_group: str | None = None, cluster: str | None = None
    ) -> dict[str, Containers]:
        listed = self.api.containers(
            all=True, filters=spec.region_filter(region, server_group, cluster)
        )
        by_group: dict[str, list[dict[str, Any]]] = {}
        for container in listed:
            name = container["Labels"].get(spec.LABEL_SERVER_GROUP)
            if name:  # not a lease's record
                by_group.setdefault(name, []).append(container)
        return {name: Containers.of(region, name, found) for name, found in by_group.items()}

    def _find(self, group: ServerGroup) -> Containers | None:
        return self._list(group.region, group.name).get(group.name)

    def _require(self, group: ServerGroup) -> Containers:
        found = self._find(group)
        if found is None:
            raise ServerGroupGone(group.name, group.region)
        return found

    def _inspect(self, found: Containers) -> dict[str, Any]:
        inspected: dict[str, Any] = self.api.inspect_container(found.source["Id"])
        return inspected

    def _to_server_group(self, found: Containers) -> ServerGroup | None:
        labels = found.source["Labels"]
        enabled = LABEL_DISABLED_INSTANCES not in labels
        # A disabled group counts the instances an interrupted disable left running.
        instances = (
            len(found.instances)
            if enabled
            else sum(1 for c in found.instances if c["State"] in ACTIVE)
        )
        return spec.to_server_group(
            labels,
            image=self._inspect(found)["Config"]["Image"],
            instances=instances,
            id=found.name,
            endpoints=found.endpoints(),
        )

    def server_groups(self, region: str, cluster: Cluster | None = None) -> list[ServerGroup]:
        with translated(f"listing the containers of region {region}"):
            listed = self._list(region, cluster=cluster.name if cluster else None)
            groups = [self._to_server_group(found) for found in listed.values()]
        return [g for g in groups if g is not None]

    def server_group(self, region: str, name: str) -> ServerGroup | None:
        with translated(f"reading {name} in {region}"):
            found = self._list(region, name).get(name)
            return self._to_server_group(found) if found else None

    def health(self, group: ServerGroup) -> Health:
        with translated(f"reading the health of {group.name}"):
            found = self._require(group)
            states = [self.api.inspect_container(c["Id"]) for c in found.instances]
        labels = found.source["Labels"]
        return self._health.of(
            states, LABEL_DISABLED_INSTANCES not in labels, LABEL_KEPT_RUNNING in labels
        )

    # --- writing ------------------------------------------------------------------------

    def definition(self, new: NewServerGroup) -> dict[str, Any]:
        workload = spec.with_cluster_network(
            spec.parse(new.spec, new.image, spec.DOCKER), new.network, new.name.cluster.name
        )
        return {
            "name": spec.new_resource_name(new.region, new.name.name),
            "instances": new.instances,
            "container": container_config(workload, spec.group_labels(new, workload.labels)),
            "declared": workload.declared.as_json(),
        }

    def create(self, region: str, definition: dict[str, Any]) -> ServerGroup:
        config = definition["container"]
        name = config["Labels"][spec.LABEL_SERVER_GROUP]
        with translated(f"creating {name} in {region}"):
            resources.ensure(
                self.api, definition.get("declared") or {}, config["Labels"], swarm=False
            )
            try:
                self._create(definition["name"], config)
            except docker.errors.APIError as e:
                if e.status_code == 409:
                    raise AlreadyExists(f"a container named {definition['name']} exists") from e
                raise
            found = self._list(region, name)[name]
            self._scale(found, config, definition["instances"])
        created = self.server_group(region, name)
        if created is None:
            raise StageFailed(f"the engine made {name} but does not list it")
        return created

    def resize(self, group: ServerGroup, instances: int) -> None:
        with translated(f"resizing {group.name}"):
            found = self._require(group)
            inspected = self._inspect(found)
            self._scale(found, copy_config(inspected, inspected["Config"]["Labels"]), instances)

    def disable(self, group: ServerGroup, records: Records, *, keep_running: bool = False) -> None:
        with translated(f"disabling {group.name}"):
            found = self._require(group)
            config = self._with_records(found, records)
            network = config["Labels"].get(LABEL_NETWORK)
            # Marked disabled before its instances stop, so that a disable cut short is
            # finished by its rerun; marked kept running only once they are out of the
            # alias, never while they still serve in it.
            if not (keep_running and network):
                self._write_definition(found, config)
            if keep_running and not network:
                return  # no alias to leave: it runs on as it is
            for container in found.instances:
                if container["State"] in ACTIVE:
                    self.api.stop(container["Id"])
            if not network:
                return
            aliases = endpoint_aliases(outside_alias(config), network)
            for container in found.instances:
                self._connect(container, network, aliases)
                if keep_running:
                    self._start(container["Id"], container["Names"][0].lstrip("/"))
            if keep_running:
                self._write_definition(found, config)

    def enable(self, group: ServerGroup, instances: int, records: Records) -> None:
        with translated(f"enabling {group.name}"):
            found = self._require(group)
            self._scale(found, self._replace_definition(found, records), instances)

    def rotated_out(self, group: ServerGroup) -> bool:
        """An instance leaves the alias as it stops, never before: see join."""
        return False

    def join(self, group: ServerGroup) -> None:
        with translated(f"putting {group.name} in its cluster's alias"):
            found = self._require(group)
            labels = found.source["Labels"]
            network, alias = labels.get(LABEL_NETWORK), labels.get(LABEL_CLUSTER, "")
            if not network or LABEL_DISABLED_INSTANCES in labels:
                return
            for container in found.instances:
                inspected = self.api.inspect_container(container["Id"])
                aliases = aliases_on(inspected, network)
                if inspected["State"]["Running"] and alias not in aliases:
                    self._connect(inspected, network, [*aliases, alias])

    def _leave_alias(self, container_id: str, config: dict[str, Any]) -> None:
        """A stopped instance that still holds its cluster's alias (a disable killed before
        it connected it again without) leaves it, so that it starts outside it."""
        network, alias = config["Labels"].get(LABEL_NETWORK), config["Labels"].get(LABEL_CLUSTER)
        if not network:
            return
        inspected = self.api.inspect_container(container_id)
        aliases = aliases_on(inspected, network)
        if alias in aliases:
            self._connect(inspected, network, [a for a in aliases if a != alias])

    def _connect(self, container: dict[str, Any], network: str, aliases: list[str]) -> None:
        """On `network` under exactly `aliases` (from its inspect or listing): connected
        again when it is on it already."""
        if network in networks_of(container):
            self.api.disconnect_container_from_network(container["Id"], network)
        self.api.connect_container_to_network(container["Id"], network, aliases=aliases or None)

    def instances(self, group: ServerGroup) -> list[Instance]:
        with translated(f"listing the instances of {group.name}"):
            found = self._require(group)
        return [Instance(c["Names"][0].lstrip("/"), c["State"] in ACTIVE) for c in found.instances]

    def terminate(self, group: ServerGroup, ids: Sequence[str], *, decrement: bool) -> None:
        """Remove the chosen containers; unless `decrement`, start as many new ones."""
        with translated(f"terminating instances of {group.name}"):
            found = self._require(group)
            inspected = self._inspect(found)
            for container in found.instances:
                if container["Names"][0].lstrip("/") in ids:
                    self._remove(container)
            if not decrement:
                config = copy_config(inspected, inspected["Config"]["Labels"])
                self._scale(self._require(group), config, len(found.instances))

    def destroy(self, group: ServerGroup) -> None:
        with translated(f"destroying {group.name}"):
            found = self._find(group)
            if found is None:
                return
            for container in reversed(found.instances):
                self._remove(container)
            if found.definition:
                self._remove(found.definition)

    def _create(self, name: str, config: dict[str, Any]) -> str:
        """Create a container, pulling its image first when the engine lacks it (as
        `docker run` does), and connect it to its networks. An engine before API 1.44
        takes one network at create: the others are connected before it starts."""
        endpoints = (config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
        first = config["HostConfig"].get("NetworkMode")
        body = dict(config)
        if endpoints:
            body["NetworkingConfig"] = {"EndpointsConfig": {first: endpoints.get(first) or {}}}
        try:
            created = self.api.create_container_from_config(body, name=name)
        except docker.errors.ImageNotFound:
            self._pull(config["Image"])
            created = self.api.create_container_from_config(body, name=name)
        container_id: str = created["Id"]
        for network, endpoint in endpoints.items():
            if network != first:
                self.api.connect_container_to_network(
                    container_id, network, aliases=endpoint.get("Aliases") or None
                )
        return container_id

    def _pull(self, image: str) -> None:
        self.console.info(f"pulling {image}")
        with translated(f"cannot pull {image}"):
            for event in self.api.pull(image, stream=True, decode=True):
                if "error" in event:
                    raise ProviderError(f"cannot pull {image}: {event['error']}")

    def _start(self, container_id: str, name: str) -> None:
        try:
            self.api.start(container_id)
        except docker.errors.APIError as e:
            # Reported by health() as the group's failure, so that a deploy can roll back.
            self.console.warn(f"cannot start {name}: {e.explanation or e}")
        self._health.started(container_id)

    def _remove(self, container: dict[str, Any]) -> None:
        if container["State"] in ACTIVE:
            self.api.stop(container["Id"])
        # With its anonymous volumes; named ones stay (treadle never removes those).
        self.api.remove_container(container["Id"], force=True, v=True)

    def _scale(self, found: Containers, config: dict[str, Any], size: int) -> None:
        """Run exactly `size` instances: remove the newest beyond it, start any of the
        others not running (an interrupted start, a disabled group), add new ones numbered
        after the highest."""
        keep, extra = found.instances[:size], found.instances[size:]
        for container in reversed(extra):
            self._remove(container)
        for container in keep:
            if container["State"] not in ACTIVE:
                self._leave_alias(container["Id"], config)
                self._start(container["Id"], container["Names"][0].lstrip("/"))
        first = max((number(c) for c in keep), default=0) + 1
        labels = definition_labels(config["Labels"])
        for n in range(first, first + size - len(keep)):
            name = f"{found.name}-{n}"
            instance = outside_alias({**config, "Labels": {**labels, LABEL_INSTANCE: str(n)}})
            self._start(self._create(name, instance), name)

    def _replace_definition(self, found: Containers, records: Records) -> dict[str, Any]:
        """Container labels cannot change: a new definition container takes the old one's
        place with the records written. Returns its create body."""
        config = self._with_records(found, records)
        self._write_definition(found, config)
        return config

    def _with_records(self, found: Containers, records: Records) -> dict[str, Any]:
        """The create body of the group's definition with `records` written."""
        inspected = self._inspect(found)
        current = {k: v for k, v in inspected["Config"]["Labels"].items() if k != LABEL_INSTANCE}
        return copy_config(inspected, merged(current, records))

    def _write_definition(self, found: Containers, config: dict[str, Any]) -> None:
        if found.definition:
            self.api.remove_container(found.definition["Id"], force=True)
        self._create(found.name, config)
