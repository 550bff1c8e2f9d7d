"""What every stage is given: the provider, the console, the deadline, how to wait, and
what the stage has done so far (whether it changed anything, the fields its result will
say, the cluster leases it holds)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any, cast

from treadle.console import Console
from treadle.errors import NOT_APPLIED
from treadle.providers.base import Provider
from treadle.stages.windows import Schedule
from treadle.waiting import Deadline

# The calls that change a cluster (the lease's own records do not count: they are gone
# again when the stage ends).
CHANGES = frozenset(
    {
        "create",
        "resize",
        "disable",
        "enable",
        "join",
        "destroy",
        "start_job",
        "stop_job",
        "terminate",
    }
)


@dataclass
class Progress:
    """What a stage has done, shared by the threads of a multi-region stage, so that the
    result tells it however the stage ends."""

    changed: bool = False
    # Fields the result will say even if the stage ends badly (the server group it made).
    fields: dict[str, object] = field(default_factory=dict)
    # The cluster leases held (treadle.stages.lease.Leases), made on first use.
    leases: object | None = None
    # The execution window and jitter have been passed.
    gated: bool = False


class Tracked:
    """A provider whose calls that change the cluster mark the stage as having changed
    something, unless the provider's answer proves it did not act (a refusal)."""

    def __init__(self, provider: Provider, progress: Progress) -> None:
        self._provider = provider
        self._progress = progress

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._provider, name)
        if name not in CHANGES:
            return attr

        def change(*args: Any, **kwargs: Any) -> Any:
            try:
                result = attr(*args, **kwargs)
            except NOT_APPLIED:
                raise
            except BaseException:
                # A request that failed in flight may have been carried out.
                self._progress.changed = True
                raise
            self._progress.changed = True
            return result

        return change


@dataclass
class Runtime:
    provider: Provider
    console: Console
    deadline: Deadline
    wait: bool = True
    dry_run: bool = False
    # Follow the provider's event stream while waiting, where it has one (--no-events).
    events: bool = True
    # How long to wait for another run's cluster lease (--lock-timeout).
    lock_timeout: float = 600.0
    # Names this run across CI retries (--run-key).
    run_key: str | None = None
    # Names this attempt of it, where the CI system tells retries apart (a GitHub run
    # attempt, a GitLab job id): two identical steps of one attempt are two steps.
    attempt: str | None = None
    # Where the CI run is (labels: treadle.ci, treadle.run-url, ...), for the lease's
    # holder and on what the stage creates.
    provenance: dict[str, str] = field(default_factory=dict)
    progress: Progress = field(default_factory=Progress)
    # Lines a dry run prints: what the stage would change.
    planned: list[str] = field(default_factory=list)
    # Closed by the stage runner on every exit path: releases the cluster leases.
    exits: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    # The stage's own name, for the lease's holder.
    stage: str = ""
    # The traffic guard's threshold (--min-capacity-ratio): None keeps the last serving
    # server group only.
    min_capacity_ratio: float | None = None
    # Taking a group out of service: how long it drains once its load balancer has it out
    # of rotation (--drain), and whether it keeps running outside its cluster's alias
    # (--keep-running).
    drain: float = 2.0
    keep_running: bool = False
    # When the stage may change a cluster (--window, --jitter).
    schedule: Schedule = field(default_factory=lambda: Schedule())

    @classmethod
    def tracking(cls, provider: Provider, **kwargs: Any) -> Runtime:
        progress = kwargs.pop("progress", None) or Progress()
        tracked = cast(Provider, Tracked(provider, progress))
        return cls(tracked, progress=progress, **kwargs)

    @property
    def changed(self) -> bool:
        return self.progress.changed

    def note(self, **fields: object) -> None:
        """Fields the result says however the stage ends."""
        self.progress.fields.update(fields)

    def for_region(self, region: str) -> Runtime:
        """The same runtime with log lines prefixed by the region, for concurrent work."""
        return replace(self, console=self.console.child(f"[{region}] ", region=region))

    def plan(self, line: str) -> None:
        self.planned.append(line)
        self.console.info(f"dry run: would {line}")

    def hold(self, region: str, cluster: str) -> None:
        """The gate before changing `cluster` in `region`: the first time, the execution
        window (treadle.stages.windows); then the cluster lease, waiting for another
        run's, held until the stage ends. A dry run changes nothing and passes neither."""
        if self.dry_run:
            return
        from treadle import tracing
        from treadle.stages.lease import leases_of
        from treadle.stages.windows import gate

        if not self.progress.gated:
            self.progress.gated = True
            gate(self)
        with tracing.span("wait lease", {"treadle.wait.for": f"{cluster} in {region}"}):
            leases_of(self).take(region, cluster)
