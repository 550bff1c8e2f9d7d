"""The one seam between provider-neutral stages and the providers (Marathon, Docker, Swarm).

A provider reads what server groups a region holds, builds a native definition from an
image and a spec, and carries out single changes (create, resize, disable, enable,
destroy), writing the records a stage hands it as labels. It reports health as plain
counts, and keeps the cluster lease's records. Everything that decides (naming,
sequences, selection, adoption, remembered sizes, strategies, failure thresholds,
guards, waiting, rollback, the lease's rules) lives once, above this seam, in
treadle.stages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from treadle.naming import Cluster, ServerGroupName, try_parse_server_group

if TYPE_CHECKING:
    from treadle.waiting import Wakeup

# Labels on everything treadle creates, so anyone can see where it came from.
LABEL_PREFIX = "treadle."
LABEL_APPLICATION = "treadle.application"
LABEL_STACK = "treadle.stack"
LABEL_DETAIL = "treadle.detail"
LABEL_CLUSTER = "treadle.cluster"
LABEL_SEQUENCE = "treadle.sequence"
LABEL_VERSION = "treadle.version"
LABEL_CREATED_AT = "treadle.created-at"
# The deploy that created it, across CI retries (see deploy's --run-key), and what it was
# created from: a rerun carries on only with a group of its own run, image and spec.
LABEL_RUN_KEY = "treadle.run-key"
LABEL_SPEC_DIGEST = "treadle.spec-digest"
# The spec it was made from (JSON), for `clone`; left out when larger than a label should be.
LABEL_SPEC = "treadle.spec"
# The server group a clone was made from.
LABEL_CLONED_FROM = "treadle.cloned-from"
# The records a stage keeps on a server group (treadle.stages.records): the size a deploy
# decided for it, the size a disabled group remembers (its presence marks the group
# disabled), the deploy that disabled it and the run that did, the group it took over
# from, and the older
# groups (with their sizes) its deploy replaces.
LABEL_CAPACITY = "treadle.capacity"
LABEL_DISABLED_INSTANCES = "treadle.disabled-instances"
LABEL_DISABLED_BY = "treadle.disabled-by"
# The run key of the stage that took it out of service (a rerun finds its work done).
LABEL_DISABLED_RUN = "treadle.disabled-run-key"
LABEL_PREVIOUS = "treadle.previous-server-group"
LABEL_REPLACES = "treadle.replaces"
# The network on which its instances answer under the cluster's name (ALIAS), and a
# disabled group left running outside that alias (KEEP_RUNNING).
LABEL_NETWORK = "treadle.network"
LABEL_KEPT_RUNNING = "treadle.kept-running"
# A canary: the size its deploy will grow it to when promoted.
LABEL_CANARY = "treadle.canary"
# A group a rollback brought back: the one it was taking out, and the rollback's run key.
LABEL_ROLLED_BACK_FROM = "treadle.rolled-back-from"
LABEL_ROLLBACK_RUN = "treadle.rollback-run-key"
# Where it was deployed from: the CI system, its run, and what that run built (treadle.ci).
LABEL_CI = "treadle.ci"
LABEL_RUN_URL = "treadle.run-url"
LABEL_COMMIT = "treadle.commit"
LABEL_REF = "treadle.ref"
LABEL_ACTOR = "treadle.actor"

# A cluster lease record's own identity and expiry (the holder's labels are the stage's).
LABEL_LEASE_ID = "treadle.lease.id"
LABEL_LEASE_EXPIRES = "treadle.lease.expires"

# Labels a stage writes on an existing group: a value of None removes the label.
Records = Mapping[str, str | None]

# What a provider can do beyond the seam's core, declared rather than probed.
JOBS = "jobs"  # one-off jobs: it is a JobProvider
TERMINATE = "terminate"  # it lists a group's instances and kills chosen ones
# Shrinking a group by terminating instances takes out the chosen ones (Swarm chooses
# which of its tasks go when a service shrinks).
DECREMENT_CHOSEN = "decrement-chosen"
# A group's instances answer under its cluster's name on a network (NewServerGroup's
# `network`), from the moment they are healthy (join); disable takes them out of that
# alias without cutting what they serve.
ALIAS = "alias"
# A disabled group can keep running outside the alias, to come back at once.
KEEP_RUNNING = "keep-running"
# Its server groups publish endpoints (HOST:PORT) that a check can reach (verify).
ENDPOINTS = "endpoints"
EVENTS = "events"  # it hears of changes as they happen: watch() brings news
JOB_EVENTS = "job-events"  # the same for job runs: watch_job() brings news


@dataclass(frozen=True)
class ServerGroup:
    """One immutable version of a cluster as a provider sees it now."""

    name: str
    region: str
    image: str | None
    # How many instances it is set to run now. A disabled group still stopping counts
    # those that still run, so that a stage can finish what an interrupted one began.
    instances: int
    # Not marked disabled (LABEL_DISABLED_INSTANCES absent).
    enabled: bool = True
    created_at: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    # The provider's own handle (a Marathon app id, a Swarm service id).
    id: str = ""
    # Where its running instances answer (`127.0.0.1:49153`), for a smoke test in a later
    # step; empty where the provider publishes nothing.
    endpoints: tuple[str, ...] = ()

    @property
    def parsed(self) -> ServerGroupName:
        parsed = try_parse_server_group(self.name)
        assert parsed is not None, f"{self.name} is not a server group name"
        return parsed

    @property
    def cluster(self) -> Cluster:
        return self.parsed.cluster

    @property
    def sequence(self) -> int:
        return self.parsed.sequence

    @property
    def serving(self) -> bool:
        return self.enabled and self.instances > 0


@dataclass(frozen=True)
class Health:
    """A server group's state against its goal, in counts."""

    desired: int
    running: int
    healthy: int
    # The provider has finished acting: no rollout left, every instance runs the group's
    # own current definition.
    settled: bool = True
    # Instances of its current definition that failed since the provider first looked
    # (the provider would keep replacing them: a stage decides when to give up).
    failed: int = 0
    last_failure: str | None = None
    # Why it cannot get anywhere without a change (cannot start at all, an update
    # paused): waiting stops at once.
    stuck: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.stuck is None
            and self.settled
            and self.running == self.desired
            and self.healthy == self.desired
        )

    def describe(self) -> str:
        if self.desired == 0:
            return (
                "stopped"
                if self.running == 0 and self.settled
                else f"stopping, {self.running} running"
            )
        text = f"{self.healthy}/{self.desired} healthy"
        if self.running != self.healthy:
            text += f", {self.running} running"
        if not self.settled and self.running == self.healthy == self.desired:
            text += ", rollout in progress"
        return text


@dataclass(frozen=True)
class Instance:
    """One instance of a server group (a Marathon task, a container, a Swarm task)."""

    id: str
    running: bool
    # Where it runs, in the provider's words (an agent, a Swarm node), when known.
    host: str = ""


@dataclass(frozen=True)
class NewServerGroup:
    """What a deploy asks a provider to create."""

    name: ServerGroupName
    region: str
    image: str
    instances: int
    spec: Mapping[str, Any] | None
    labels: Mapping[str, str]
    # The network on which its instances answer under the cluster's name (ALIAS).
    network: str | None = None
    # The cluster's server groups already in the region, for a definition that must
    # coexist with theirs (Marathon: marathon-lb's two service ports).
    siblings: tuple[ServerGroup, ...] = ()


@dataclass(frozen=True)
class LeaseKey:
    """The cluster lease of one cluster in one region, or (`claim`) the claim of one run
    on taking over the lease record whose id it names."""

    region: str
    cluster: str
    claim: str | None = None


@dataclass(frozen=True)
class Lease:
    """A lease record as the provider keeps it."""

    key: LeaseKey
    # The record's own identity: a record made again under the same key has another.
    id: str
    # Who holds it (treadle.stages.lease writes them), and until when (UTC, ISO 8601).
    labels: Mapping[str, str]
    expires: str


class Provider(Protocol):
    name: str
    default_region: str
    capabilities: frozenset[str]

    def check_region(self, region: str) -> str:
        """The region in canonical form; InputError when the provider would reject it."""

    def server_groups(self, region: str, cluster: Cluster | None = None) -> list[ServerGroup]:
        """Every server group (treadle-named) of a region, in no particular order. Given
        `cluster`, the provider may leave out other clusters' groups early (it need not:
        callers pick the cluster out themselves), which saves work in a crowded region."""

    def server_group(self, region: str, name: str) -> ServerGroup | None: ...

    def definition(self, new: NewServerGroup) -> dict[str, Any]:
        """The native definition to create, built without any call; InputError for a spec
        the provider would reject. Dry runs print it."""

    def create(self, region: str, definition: dict[str, Any]) -> ServerGroup:
        """AlreadyExists when something of that name exists: never taken for ours."""

    def resize(self, group: ServerGroup, instances: int) -> None:
        """Run `instances` instances (starting any that should run and do not), and change
        nothing else: no record is written, no running instance replaced."""

    def disable(self, group: ServerGroup, records: Records, *, keep_running: bool = False) -> None:
        """Run no instances (or, with `keep_running`, run them outside the alias:
        KEEP_RUNNING), keep the definition, and write `records` (which mark it disabled)
        first, so that an interrupted disable is seen as one. An instance leaves the
        cluster's alias (ALIAS) as it stops, after what it was serving: never cut off
        while it serves."""

    def enable(self, group: ServerGroup, instances: int, records: Records) -> None:
        """Bring a disabled group back at `instances`, writing `records`."""

    def rotated_out(self, group: ServerGroup) -> bool:
        """Whether a load balancer has taken the group out of rotation by itself while it
        still runs (marathon-lb, for a group of its deployment group once a newer one is
        healthy), so that a drain before it stops lets what it serves finish."""

    def join(self, group: ServerGroup) -> None:
        """Put the running instances of `group`, if it is enabled, in its cluster's alias
        (ALIAS): the wait calls it once they are healthy, so that nothing is sent to an
        instance that cannot answer yet. A provider whose engine does so by itself does
        nothing."""

    def destroy(self, group: ServerGroup) -> None:
        """Remove it; one already gone is not an error."""

    def health(self, group: ServerGroup) -> Health:
        """Its state now, read afresh (desired is its current size, not `group`'s);
        ServerGroupGone when it no longer exists."""

    def watch(self, group: ServerGroup) -> AbstractContextManager[Wakeup | None]:
        """While inside, news of `group` (None where the provider hears none: EVENTS)."""

    def instances(self, group: ServerGroup) -> list[Instance]:
        """Its instances now (TERMINATE)."""

    def terminate(self, group: ServerGroup, ids: Sequence[str], *, decrement: bool) -> None:
        """Kill these instances (TERMINATE): replaced, or with `decrement` the group's size
        shrinks by as many (the stage records the new size)."""

    # --- the cluster lease's records (the rules are treadle.stages.lease's) ------------

    def lease(self, key: LeaseKey) -> Lease | None:
        """The record under `key`, None when there is none."""

    def create_lease(self, key: LeaseKey, labels: Mapping[str, str], expires: str) -> Lease | None:
        """Make the record under `key`, atomically: None when one exists already."""

    def renew_lease(self, lease: Lease, expires: str) -> bool:
        """Move its expiry on; False when that record is gone (replaced or deleted)."""

    def delete_lease(self, lease: Lease) -> None:
        """Delete the record; one already gone is not an error. Providers whose records
        have an identity of their own delete only that record."""

    def close(self) -> None: ...


def server_group_labels(name: ServerGroupName, version: str, created_at: str) -> dict[str, str]:
    c = name.cluster
    return {
        LABEL_APPLICATION: c.app,
        LABEL_STACK: c.stack,
        LABEL_DETAIL: c.detail,
        LABEL_CLUSTER: c.name,
        LABEL_SEQUENCE: f"{name.sequence:03d}",
        LABEL_VERSION: version,
        LABEL_CREATED_AT: created_at,
    }


def merged(labels: Mapping[str, str], records: Records) -> dict[str, str]:
    """Labels with records written over them (None removes)."""
    result = dict(labels)
    for key, value in records.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


@dataclass(frozen=True)
class JobRequest:
    """What run-job asks a provider to run: flags, laid over an optional native spec."""

    job_id: str | None
    image: str | None
    command: str | None
    env: Mapping[str, str]
    cpus: float | None
    mem: int | None
    spec: Mapping[str, Any] | None
    labels: Mapping[str, str]
    # The output file the stage will ask for once the run ends, so that a provider that
    # cannot reach it says so before the job runs.
    output_file: str | None = None


# A job's output streams, read apart: outputs come from stdout only.
LogStream = Literal["stdout", "stderr"]


@dataclass(frozen=True)
class JobRun:
    job_id: str
    run_id: str


@dataclass(frozen=True)
class JobStatus:
    # The provider's own word for the run's state (ACTIVE, SUCCESS, exited, ...).
    state: str
    finished: bool
    succeeded: bool = False
    exit_code: int | None = None
    # Why it failed, in the provider's words.
    message: str | None = None


class JobProvider(Protocol):
    """The part of a provider that runs one-off jobs to completion (run-job): JOBS."""

    def job_definition(self, job: JobRequest) -> dict[str, Any]:
        """The native job definition, built without any call; InputError when the provider
        would reject it."""

    def start_job(self, definition: dict[str, Any]) -> JobRun:
        """Create the job (or update it when it exists) and start one run."""

    def job_status(self, run: JobRun) -> JobStatus: ...

    def job_log(self, run: JobRun, offset: int, stream: LogStream = "stdout") -> tuple[str, int]:
        """One of the job's streams (stdout, stderr) from `offset` on, and the offset after
        it ("" when nothing new)."""

    def job_file(self, run: JobRun, path: str) -> bytes | None:
        """A file the job wrote (relative paths: in its working directory or sandbox),
        None when it does not exist."""

    def stop_job(self, run: JobRun) -> None: ...

    def finish_job(self, run: JobRun) -> None:
        """Release what the run left behind once its outputs are read."""

    def watch_job(self, run: JobRun) -> AbstractContextManager[Wakeup | None]:
        """While inside, news of `run` (None where there is none: JOB_EVENTS)."""
