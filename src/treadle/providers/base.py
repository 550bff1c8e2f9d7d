"""The one seam between provider-neutral stages and the providers (Marathon, Docker, Swarm).

A provider answers what server groups a region holds, builds a native definition from an
image and a spec, and carries out single changes: create, resize, disable, enable,
destroy. It reports health as plain counts. Everything else (naming, sequences,
selection, strategies, guards, waiting, rollback) lives once, above this seam.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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
# The deploy that created it, across CI retries (see deploy's --run-key).
LABEL_RUN_KEY = "treadle.run-key"
# The size a disabled server group had, so that enable brings it back.
LABEL_DISABLED_INSTANCES = "treadle.disabled-instances"


@dataclass(frozen=True)
class ServerGroup:
    """One immutable version of a cluster as a provider sees it now."""

    name: str
    region: str
    image: str | None
    instances: int
    enabled: bool = True
    created_at: str | None = None
    disabled_instances: int | None = None
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

    @property
    def size(self) -> int:
        """The size it serves at when enabled."""
        if self.enabled:
            return self.instances
        return self.disabled_instances or 0


@dataclass(frozen=True)
class Health:
    """A server group's state against its goal, in counts."""

    desired: int
    running: int
    healthy: int
    # The provider has finished acting: no rollout left, every instance runs the group's
    # own current definition.
    settled: bool = True
    # Set when the group cannot become healthy (tasks keep failing); waiting stops at once.
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.failure is None
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
class NewServerGroup:
    """What a deploy asks a provider to create."""

    name: ServerGroupName
    region: str
    image: str
    instances: int
    spec: Mapping[str, Any] | None
    labels: Mapping[str, str]


class Provider(Protocol):
    name: str
    default_region: str

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

    def create(self, region: str, definition: dict[str, Any]) -> ServerGroup: ...

    def resize(self, group: ServerGroup, instances: int) -> None: ...

    def disable(self, group: ServerGroup, remember: int) -> None:
        """Run no instances, keep the definition, and remember `remember` as its size."""

    def enable(self, group: ServerGroup) -> None:
        """Bring a disabled group back to the size it remembers."""

    def destroy(self, group: ServerGroup) -> None: ...

    def health(self, group: ServerGroup) -> Health:
        """Its state now, read afresh (desired is its current size, not `group`'s)."""

    def close(self) -> None: ...


@runtime_checkable
class Watching(Protocol):
    """A provider that hears of changes as they happen (an event stream), so that a wait
    checks again as soon as something happens instead of at its next poll. Optional: a
    provider without it is polled."""

    def watch(self, group: ServerGroup) -> AbstractContextManager[Wakeup]:
        """While inside, the wakeup brings news of `group`."""


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
    """The part of a provider that runs one-off jobs to completion (run-job)."""

    def job_definition(self, job: JobRequest) -> dict[str, Any]:
        """The native job definition, built without any call; InputError when the provider
        would reject it."""

    def start_job(self, definition: dict[str, Any]) -> JobRun:
        """Create the job (or update it when it exists) and start one run."""

    def job_status(self, run: JobRun) -> JobStatus: ...

    def job_log(self, run: JobRun, offset: int) -> tuple[str, int]:
        """The job's stdout from `offset` on, and the offset after it ("" when nothing new)."""

    def job_file(self, run: JobRun, path: str) -> bytes | None:
        """A file the job wrote (relative paths: in its working directory or sandbox),
        None when it does not exist."""

    def stop_job(self, run: JobRun) -> None: ...

    def finish_job(self, run: JobRun) -> None:
        """Release what the run left behind once its outputs are read."""


@runtime_checkable
class WatchingJobs(Protocol):
    """A job provider that hears of a run's changes as they happen, so that run-job reads
    the run's state when something happened instead of polling it. Optional: a provider
    without it is polled."""

    def watch_job(self, run: JobRun) -> AbstractContextManager[Wakeup | None]:
        """While inside, the wakeup (None: no news to be had) brings news of `run`."""
