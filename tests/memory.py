"""An in-memory provider: the seam of treadle.providers.base held in dictionaries, so that
stages run against it in milliseconds.

    Store             one cluster's state (server groups, lease records, how images
                      behave), shared by every MemoryProvider opened on it, as the
                      processes of several CI runs share one real cluster
    MemoryProvider    one process's connection to a store: it records every call it is
                      asked, and carries the faults a test plants in it

It behaves as Marathon does (treadle.providers.marathon.provider): `instances` is the
size a group is set to, a disabled group is one carrying LABEL_DISABLED_INSTANCES, and a
write is one atomic change of size and labels; as on Docker, a disabled group still
stopping counts the instances that still run. Instances move towards the set size one
health read at a time (a health read is the provider acting): missing ones start, extra
ones stop, and a started instance of a healthy image passes its checks after
`healthy_after` reads. An image can be scripted to become healthy slowly, never, or to
crash (each read, every instance fails and is replaced).

Faults (`fail`, `kill`, `hang`, `before`) fire on the Nth call of the named methods of
one provider, before or after the call is carried out. A killed provider is a dead
process: the call raises Killed, later calls from its main thread raise Killed again,
and those from its other threads (the lease's renewer) never return.

Below the provider: `seed` puts a group in a store without any call, and `runtime` and
`staged` run a stage over a provider as the stage runner does.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from treadle import __version__
from treadle.console import Console
from treadle.errors import AlreadyExists, InputError, ProviderError, ServerGroupGone
from treadle.naming import Cluster, parse_server_group, try_parse_server_group
from treadle.providers.base import (
    DECREMENT_CHOSEN,
    LABEL_CAPACITY,
    LABEL_CREATED_AT,
    LABEL_DISABLED_BY,
    LABEL_DISABLED_INSTANCES,
    TERMINATE,
    Health,
    Instance,
    Lease,
    LeaseKey,
    NewServerGroup,
    Provider,
    Records,
    ServerGroup,
    merged,
    server_group_labels,
)
from treadle.stages.runtime import Runtime
from treadle.waiting import Deadline, shielded

__all__ = [
    "CHANGES",
    "LEASE_CALLS",
    "Call",
    "Fault",
    "Image",
    "Killed",
    "MemoryProvider",
    "MemorySettings",
    "Store",
    "groups_of",
    "log",
    "runtime",
    "seed",
    "staged",
]

DEFAULT_REGION = "local"
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
# What a spec may say: the rest is refused, as every real provider refuses what it does
# not know.
SPEC_FIELDS = frozenset({"cmd", "env", "labels"})
# The calls that change a cluster, and the lease's.
CHANGES = ("create", "resize", "disable", "enable", "destroy", "terminate")
LEASE_CALLS = ("lease", "create_lease", "renew_lease", "delete_lease")
# How long a hung call waits to be let go before it carries on anyway, so that a test that
# forgets to let it go fails instead of hanging the run.
HANG_LIMIT = 10.0


class Killed(BaseException):
    """The process died in the middle of this call: nothing after it runs (no handler of
    Exception, as none runs in a killed process)."""


@dataclass
class Image:
    """How the instances of an image behave."""

    # Health reads after an instance starts before it passes its checks; None: never.
    healthy_after: int | None = 1
    # Every instance exits at once, each health read (a crash loop).
    crashes: bool = False


@dataclass
class _Group:
    name: str
    region: str
    image: str
    size: int
    labels: dict[str, str]
    spec: dict[str, Any]
    id: str
    # Health reads each running instance has seen since it started, and its id.
    ages: list[int] = field(default_factory=list)
    instance_ids: list[str] = field(default_factory=list)
    failed: int = 0


class Store:
    """One in-memory cluster. Every read and write holds its lock, so that the threads of
    one stage (regions, the lease's renewer) and of several stages see one state."""

    _named: dict[str, Store] = {}
    _named_lock = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.groups: dict[tuple[str, str], _Group] = {}
        self.leases: dict[LeaseKey, Lease] = {}
        self.images: dict[str, Image] = {}
        self._ids = itertools.count(1)

    @classmethod
    def open(cls, name: str) -> Store:
        """A fresh store under `name`, replacing any earlier one."""
        with cls._named_lock:
            store = cls._named[name] = Store()
        return store

    @classmethod
    def named(cls, name: str) -> Store:
        """The store under `name`, made on first use."""
        with cls._named_lock:
            return cls._named.setdefault(name, Store())

    def next_id(self) -> str:
        with self.lock:
            return f"{next(self._ids):06d}"

    def image(self, image: str) -> Image:
        return self.images.get(image) or Image()

    def never_healthy(self, image: str) -> str:
        self.images[image] = Image(healthy_after=None)
        return image

    def crashing(self, image: str) -> str:
        self.images[image] = Image(healthy_after=None, crashes=True)
        return image

    def slow(self, image: str, reads: int) -> str:
        self.images[image] = Image(healthy_after=reads)
        return image

    def put(self, group: ServerGroup, *, spec: Mapping[str, Any] | None = None) -> None:
        """Make a group as it is (a test's starting point, or another run's work),
        without any call; its instances are up and healthy."""
        with self.lock:
            found = _Group(
                name=group.name,
                region=group.region,
                image=group.image or "",
                size=group.instances,
                labels=dict(group.labels),
                spec=dict(spec or {}),
                id=group.id or f"{group.region}/{group.name}#{self.next_id()}",
                ages=[1_000_000] * group.instances,
                instance_ids=[f"{group.name}.{self.next_id()}" for _ in range(group.instances)],
            )
            self.groups[(group.region, group.name)] = found

    def view(self, region: str, name: str) -> ServerGroup | None:
        """A group as a provider reports it, without any call (for assertions)."""
        with self.lock:
            found = self.groups.get((region, name))
            return _server_group(found) if found else None

    def all(self, region: str) -> list[ServerGroup]:
        with self.lock:
            return [_server_group(g) for g in self.groups.values() if g.region == region]

    def instances_running(self, region: str, name: str) -> int:
        with self.lock:
            found = self.groups.get((region, name))
            return len(found.ages) if found else 0


def _server_group(found: _Group) -> ServerGroup:
    enabled = LABEL_DISABLED_INSTANCES not in found.labels
    return ServerGroup(
        name=found.name,
        region=found.region,
        image=found.image,
        # A disabled group still stopping counts those that still run (as on Docker).
        instances=found.size if enabled else max(found.size, len(found.ages)),
        enabled=enabled,
        created_at=found.labels.get(LABEL_CREATED_AT),
        labels=dict(found.labels),
        id=found.id,
    )


@dataclass(frozen=True)
class Call:
    method: str
    # The server group's name, the lease's key, or the region, whichever the call names.
    target: object
    args: tuple[Any, ...]
    thread: str
    # What was left of the stage's deadline (its grace included) when the call came:
    # a real provider's request gets no more time than that.
    remaining: float | None = None


@dataclass
class Fault:
    """Fires on the `nth` call of `methods` (any method when empty)."""

    methods: frozenset[str]
    nth: int
    # Raised when it fires; None with a hang that only delays.
    error: BaseException | None = None
    # Carry the call out first, then raise (its answer was lost).
    after: bool = False
    # Block until set (at most HANG_LIMIT), then carry on.
    hang: threading.Event | None = None
    # The process dies: this call raises Killed, later ones never return.
    kill: bool = False
    # Done first (another process acting meanwhile), then the call carries on.
    action: Callable[[], object] | None = None
    seen: int = 0
    fired: threading.Event = field(default_factory=threading.Event)

    def matches(self, method: str) -> bool:
        return not self.methods or method in self.methods


@dataclass(frozen=True)
class MemorySettings:
    """The store the CLI's providers open, by name (no options of its own)."""

    store: str = "cli"


class MemoryProvider:
    name = "memory"
    default_region = DEFAULT_REGION
    capabilities: frozenset[str] = frozenset({TERMINATE, DECREMENT_CHOSEN})

    def __init__(
        self,
        settings: MemorySettings | None = None,
        *,
        store: Store | None = None,
        deadline: Deadline | None = None,
        console: object = None,
        request_timeout: float = 0.0,
    ) -> None:
        self.store = store or Store.named((settings or MemorySettings()).store)
        self.deadline = deadline
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.closed = False
        self._lock = threading.Lock()
        self._dead = threading.Event()

    # --- what a test plants and reads -----------------------------------------------

    def fail(
        self, nth: int, *methods: str, error: BaseException | None = None, after: bool = False
    ) -> Fault:
        """Raise `error` (a ProviderError) on the nth call of `methods`."""
        fault = Fault(
            frozenset(methods), nth, error or ProviderError(f"fault on call {nth}"), after=after
        )
        self.faults.append(fault)
        return fault

    def kill(self, nth: int, *methods: str, after: bool = False) -> Fault:
        """The process dies on the nth call of `methods` (before or after carrying it out)."""
        fault = Fault(frozenset(methods), nth, Killed(f"killed on call {nth}"), after, kill=True)
        self.faults.append(fault)
        return fault

    def hang(self, nth: int, *methods: str) -> Fault:
        """The nth call of `methods` blocks until `fault.hang` is set; `fault.fired` says
        it has begun."""
        fault = Fault(frozenset(methods), nth, None, hang=threading.Event())
        self.faults.append(fault)
        return fault

    def before(self, nth: int, *methods: str, action: Callable[[], object]) -> Fault:
        """Do `action` just before the nth call of `methods` is carried out."""
        fault = Fault(frozenset(methods), nth, None, action=action)
        self.faults.append(fault)
        return fault

    def called(self, *methods: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if not methods or c.method in methods]

    def count(self, *methods: str) -> int:
        return len(self.called(*methods))

    def changes(self) -> list[tuple[str, object]]:
        """(method, server group) of every call that changes the cluster, in order."""
        return [(c.method, c.target) for c in self.called(*CHANGES)]

    @property
    def dead(self) -> bool:
        return self._dead.is_set()

    # --- the one way in ----------------------------------------------------------------

    def _call(
        self, method: str, target: object, args: tuple[Any, ...], act: Callable[[], Any]
    ) -> Any:
        if self._dead.is_set():
            if threading.current_thread() is threading.main_thread():
                raise Killed("the process is dead")
            # A dead process's other threads (the lease's renewer) never get an answer.
            threading.Event().wait()
        with self._lock:
            remaining = self.deadline.remaining() if self.deadline else None
            thread = threading.current_thread().name
            self.calls.append(Call(method, target, args, thread, remaining))
            firing = []
            for fault in self.faults:
                if fault.matches(method) and not fault.fired.is_set():
                    fault.seen += 1
                    if fault.seen == fault.nth:
                        fault.fired.set()
                        firing.append(fault)
        for fault in firing:
            if fault.action is not None:
                fault.action()
            elif fault.hang is not None:
                fault.hang.wait(HANG_LIMIT)
            elif not fault.after:
                self._raise(fault)
        answer = act()
        for fault in firing:
            if fault.after and fault.error is not None:
                self._raise(fault)
        return answer

    def _raise(self, fault: Fault) -> None:
        if fault.kill:
            self._dead.set()
        assert fault.error is not None
        raise fault.error

    # --- the seam ------------------------------------------------------------------------

    def check_region(self, region: str) -> str:
        def act() -> str:
            if not _REGION.fullmatch(region or ""):
                raise InputError(
                    f"invalid region {region!r}: lower-case letters, digits and single hyphens"
                )
            return region

        return self._call("check_region", region, (region,), act)

    def server_groups(self, region: str, cluster: Cluster | None = None) -> list[ServerGroup]:
        # Every group of the region: callers pick the cluster out themselves.
        return self._call(
            "server_groups", region, (region, cluster), lambda: self.store.all(region)
        )

    def server_group(self, region: str, name: str) -> ServerGroup | None:
        return self._call(
            "server_group", name, (region, name), lambda: self.store.view(region, name)
        )

    def definition(self, new: NewServerGroup) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            spec = dict(new.spec or {})
            unknown = sorted(set(spec) - SPEC_FIELDS)
            if unknown:
                raise InputError(
                    f"spec: unknown field {unknown[0]!r} (known: {', '.join(sorted(SPEC_FIELDS))})"
                )
            labels = spec.get("labels") or {}
            if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
                raise InputError("spec: labels must map names to strings")
            if not new.image or any(c.isspace() for c in new.image):
                raise InputError(f"invalid image {new.image!r}")
            return {
                "name": new.name.name,
                "region": new.region,
                "image": new.image,
                "instances": new.instances,
                "labels": {**labels, **new.labels},
                "spec": spec,
            }

        return self._call("definition", new.name.name, (new,), act)

    def create(self, region: str, definition: dict[str, Any]) -> ServerGroup:
        name = definition["name"]

        def act() -> ServerGroup:
            with self.store.lock:
                if (region, name) in self.store.groups:
                    raise AlreadyExists(f"a server group named {name} exists in {region}")
                found = _Group(
                    name=name,
                    region=region,
                    image=definition["image"],
                    size=definition["instances"],
                    labels=dict(definition["labels"]),
                    spec=dict(definition["spec"]),
                    id=f"{region}/{name}#{self.store.next_id()}",
                )
                self.store.groups[(region, name)] = found
                return _server_group(found)

        return self._call("create", name, (region, definition), act)

    def _write(self, group: ServerGroup, size: int, records: Records) -> None:
        with self.store.lock:
            found = self.store.groups.get((group.region, group.name))
            if found is None:
                raise ServerGroupGone(group.name, group.region)
            found.labels = merged(found.labels, records)
            found.size = size

    def resize(self, group: ServerGroup, instances: int) -> None:
        self._call(
            "resize", group.name, (group, instances), lambda: self._write(group, instances, {})
        )

    def rotated_out(self, group: ServerGroup) -> bool:
        return False

    def join(self, group: ServerGroup) -> None:
        """No alias here (no ALIAS)."""

    def disable(self, group: ServerGroup, records: Records, *, keep_running: bool = False) -> None:
        self._call(
            "disable", group.name, (group, dict(records)), lambda: self._write(group, 0, records)
        )

    def enable(self, group: ServerGroup, instances: int, records: Records) -> None:
        self._call(
            "enable",
            group.name,
            (group, instances, dict(records)),
            lambda: self._write(group, instances, records),
        )

    def destroy(self, group: ServerGroup) -> None:
        def act() -> None:
            with self.store.lock:
                self.store.groups.pop((group.region, group.name), None)

        self._call("destroy", group.name, (group,), act)

    def health(self, group: ServerGroup) -> Health:
        return self._call("health", group.name, (group,), lambda: self._tick(group))

    def _tick(self, group: ServerGroup) -> Health:
        """The provider acts once: instances beyond the size stop, missing ones start, and
        every one ages a read."""
        with self.store.lock:
            found = self.store.groups.get((group.region, group.name))
            if found is None:
                raise ServerGroupGone(group.name, group.region)
            image = self.store.image(found.image)
            del found.ages[found.size :]
            del found.instance_ids[found.size :]
            missing = found.size - len(found.ages)
            found.ages += [0] * missing
            found.instance_ids += [f"{found.name}.{self.store.next_id()}" for _ in range(missing)]
            if image.crashes and found.ages:
                found.failed += len(found.ages)
                found.ages = [0] * found.size
                found.instance_ids = [f"{found.name}.{self.store.next_id()}" for _ in found.ages]
                running = 0
            else:
                found.ages = [age + 1 for age in found.ages]
                running = len(found.ages)
            after = image.healthy_after
            healthy = 0 if after is None else sum(1 for age in found.ages if age >= after)
            return Health(
                desired=found.size,
                running=running,
                healthy=min(healthy, running),
                failed=found.failed,
                last_failure="exited with code 1" if found.failed else None,
            )

    def instances(self, group: ServerGroup) -> list[Instance]:
        def act() -> list[Instance]:
            with self.store.lock:
                found = self.store.groups.get((group.region, group.name))
                if found is None:
                    raise ServerGroupGone(group.name, group.region)
                return [Instance(i, True) for i in found.instance_ids]

        return self._call("instances", group.name, (group,), act)

    def terminate(self, group: ServerGroup, ids: Sequence[str], *, decrement: bool) -> None:
        def act() -> None:
            with self.store.lock:
                found = self.store.groups[(group.region, group.name)]
                keep = [n for n, i in enumerate(found.instance_ids) if i not in ids]
                killed = len(found.instance_ids) - len(keep)
                found.ages = [found.ages[n] for n in keep]
                found.instance_ids = [found.instance_ids[n] for n in keep]
                if decrement:
                    found.size -= killed

        self._call("terminate", group.name, (group, list(ids), decrement), act)

    def watch(self, group: ServerGroup) -> contextlib.AbstractContextManager[None]:
        return self._call("watch", group.name, (group,), contextlib.nullcontext)

    # --- the cluster lease's records ---------------------------------------------------

    def lease(self, key: LeaseKey) -> Lease | None:
        return self._call("lease", key, (key,), lambda: self.store.leases.get(key))

    def create_lease(self, key: LeaseKey, labels: Mapping[str, str], expires: str) -> Lease | None:
        def act() -> Lease | None:
            with self.store.lock:
                if key in self.store.leases:
                    return None
                made = self.store.leases[key] = Lease(
                    key, f"lease-{self.store.next_id()}", dict(labels), expires
                )
                return made

        return self._call("create_lease", key, (key, dict(labels), expires), act)

    def renew_lease(self, lease: Lease, expires: str) -> bool:
        def act() -> bool:
            with self.store.lock:
                current = self.store.leases.get(lease.key)
                if current is None or current.id != lease.id:
                    return False
                self.store.leases[lease.key] = Lease(
                    current.key, current.id, current.labels, expires
                )
                return True

        return self._call("renew_lease", lease.key, (lease, expires), act)

    def delete_lease(self, lease: Lease) -> None:
        def act() -> None:
            # Only that record: one made again under the same key is someone else's.
            with self.store.lock:
                current = self.store.leases.get(lease.key)
                if current is not None and current.id == lease.id:
                    del self.store.leases[lease.key]

        self._call("delete_lease", lease.key, (lease,), act)

    def close(self) -> None:
        def act() -> None:
            self.closed = True

        self._call("close", None, (), act)


def groups_of(store: Store, region: str, cluster: str) -> dict[str, tuple[bool, int]]:
    """name -> (enabled, instances) of a cluster's groups, for assertions."""
    found = {}
    for g in store.all(region):
        parsed = try_parse_server_group(g.name)
        if parsed is not None and parsed.cluster.name == cluster:
            found[g.name] = (g.enabled, g.instances)
    return found


# --- stages over a store, as the stage runner runs them ---------------------------------


def seed(
    store: Store,
    name: str,
    instances: int,
    *,
    region: str = DEFAULT_REGION,
    image: str = "web:1",
    enabled: bool = True,
    capacity: int | None = None,
    disabled_by: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> ServerGroup:
    """A server group already in the cluster, healthy, made by an earlier deploy (created
    in 2020, ordered by its sequence). `capacity`: its recorded (remembered) size."""
    parsed = parse_server_group(name)
    seq = parsed.sequence
    records: dict[str, str] = {
        **server_group_labels(
            parsed,
            __version__,
            f"2020-01-01T{seq // 3600:02d}:{seq // 60 % 60:02d}:{seq % 60:02d}.000Z",
        ),
        **(labels or {}),
    }
    if capacity is not None:
        records[LABEL_CAPACITY] = str(capacity)
    if not enabled:
        records[LABEL_DISABLED_INSTANCES] = str(capacity if capacity is not None else instances)
    if disabled_by:
        records[LABEL_DISABLED_BY] = disabled_by
    group = ServerGroup(name, region, image, instances, enabled, labels=records)
    store.put(group)
    found = store.view(region, name)
    assert found is not None
    return found


def runtime(provider: Provider, seconds: float = 2.0, **kwargs: Any) -> Runtime:
    """A stage's runtime over `provider`, its log kept in `rt.console.stream`; a memory
    provider opened without a deadline is given the stage's, as the stage runner does."""
    kwargs.setdefault("stage", "test")
    deadline = Deadline(seconds)
    if isinstance(provider, MemoryProvider) and provider.deadline is None:
        provider.deadline = deadline
    return Runtime.tracking(provider, console=Console(io.StringIO()), deadline=deadline, **kwargs)


@contextlib.contextmanager
def staged(rt: Runtime) -> Iterator[Runtime]:
    """Run a stage as the runner does: its exits (the cluster leases' release) closed on
    every exit path, shielded from a cancel."""
    try:
        yield rt
    finally:
        with shielded():
            rt.exits.close()


def log(rt: Runtime) -> str:
    stream = rt.console.stream
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()
