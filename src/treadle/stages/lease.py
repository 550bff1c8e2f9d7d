"""The cluster lease: one run at a time changes a cluster in a region, whichever CI system
started it.

The lease is a record on the cluster itself (a Marathon app of no instances, a created
container, a Swarm service of no replicas), made atomically under a name of its own, so
that two runs asking at once cannot both get it. It names its holder (run key, CI run,
host, process) and an expiry that the holder moves on every RENEW_EVERY seconds while it
holds it; a holder that dies stops renewing, and TTL seconds later anyone may take the
lease over. Taking over is itself a record made atomically (a claim on that one expired
record), so that of several runs waiting for a dead holder exactly one replaces it. A
rerun with the run key of the holder (a CI retry of a killed job) takes it over at once.

Costs: on a cluster nobody else is changing, two requests (make the record, delete it).
A holder that loses its lease (it stopped renewing for longer than TTL, and another run
took over) stops at its next pause with LeaseLost, without touching the cluster again.

By hand: the record is `<cluster>.lease` in the region (Marathon), the container or
service labelled `treadle.lease=<cluster>` (Docker, Swarm); deleting it breaks the lease.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from treadle.errors import LeaseHeld, LeaseLost, TreadleError
from treadle.providers.base import LABEL_RUN_KEY, LABEL_RUN_URL, Lease, LeaseKey, Provider
from treadle.stages.runtime import Runtime
from treadle.waiting import Deadline, cancel, pause, poll_intervals

# A holder that has not renewed for this long is taken for dead.
TTL = 30.0
RENEW_EVERY = 10.0
# A run taking over an expired lease finishes within a request or two.
CLAIM_TTL = 15.0
# Waiting for another run's lease: how often to look, and to say so.
LOOK_FIRST, LOOK_MAX = 0.5, 2.0
PROGRESS_EVERY = 10.0
# Releasing may take this long after the stage's own deadline has passed (a lease left
# behind by a cluster that stopped answering expires on its own).
RELEASE_SECONDS = 2.0

LABEL_LEASE = "treadle.lease"
LABEL_HOLDER = "treadle.lease.holder"
LABEL_STAGE = "treadle.lease.stage"
LABEL_HOST = "treadle.lease.host"
LABEL_SINCE = "treadle.lease.since"


def now() -> datetime:
    return datetime.now(UTC)


def timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def expired(lease: Lease, at: datetime | None = None) -> bool:
    try:
        expires = datetime.fromisoformat(lease.expires.replace("Z", "+00:00"))
    except ValueError:
        return True  # unreadable: nobody can be renewing it
    return expires <= (at or now())


def describe(lease: Lease) -> str:
    """Who holds it, for a person deciding whether to wait or break it."""
    labels = lease.labels
    who = f"run {labels[LABEL_RUN_KEY]}" if labels.get(LABEL_RUN_KEY) else "a run"
    where = f" ({labels[LABEL_RUN_URL]})" if labels.get(LABEL_RUN_URL) else ""
    stage = f"{labels[LABEL_STAGE]} " if labels.get(LABEL_STAGE) else ""
    return (
        f"{stage}{who}{where} on {labels.get(LABEL_HOST, 'an unknown host')}, since "
        f"{labels.get(LABEL_SINCE, '?')}, renewed until {lease.expires}"
    )


@dataclass
class Leases:
    """The leases one stage holds, renewed by one thread until the stage releases them."""

    provider: Provider
    rt: Runtime
    holder: str = field(default_factory=lambda: os.urandom(8).hex())
    held: list[Lease] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def labels(self, cluster: str) -> dict[str, str]:
        rt = self.rt
        labels = {
            LABEL_LEASE: cluster,
            LABEL_HOLDER: self.holder,
            LABEL_STAGE: rt.stage,
            LABEL_HOST: f"{socket.gethostname()} pid {os.getpid()}",
            LABEL_SINCE: timestamp(now()),
        }
        if rt.run_key:
            labels[LABEL_RUN_KEY] = rt.run_key
        if rt.provenance.get(LABEL_RUN_URL):
            labels[LABEL_RUN_URL] = rt.provenance[LABEL_RUN_URL]
        return labels

    def take(self, region: str, cluster: str) -> None:
        """Hold the lease of `cluster` in `region`, waiting up to --lock-timeout for
        another run's; LeaseHeld (exit 3) when it is not free by then."""
        rt, key = self.rt, LeaseKey(region, cluster)
        with self._lock:
            if any(lease.key == key for lease in self.held):
                return  # held already, by this stage
        wait = Deadline(rt.lock_timeout)
        say_at = 0.0
        for interval in poll_intervals(LOOK_FIRST, LOOK_MAX):
            lease = self.provider.create_lease(key, self.labels(cluster), _expiry(TTL))
            if lease is not None:
                self._hold(lease)
                # The stage's own time starts once it may act.
                rt.deadline.shift(wait.elapsed())
                return
            current = self.provider.lease(key)
            if current is None:
                continue  # released meanwhile
            if self._ours(current) or expired(current):
                self._take_over(current)
                continue
            if wait.expired():
                raise LeaseHeld(
                    f"the cluster lease of {cluster} in {region} is held by "
                    f"{describe(current)}; waited {wait.seconds:g}s (--lock-timeout)"
                )
            if wait.elapsed() >= say_at:
                rt.console.info(
                    f"waiting for the cluster lease of {cluster} in {region}, held by "
                    f"{describe(current)}"
                )
                say_at = wait.elapsed() + PROGRESS_EVERY
            pause(min(interval, max(0.05, wait.remaining())))

    def _ours(self, lease: Lease) -> bool:
        """Held by an earlier attempt of this run (same run key): it is dead or dying."""
        return bool(self.rt.run_key) and lease.labels.get(LABEL_RUN_KEY) == self.rt.run_key

    def _take_over(self, dead: Lease) -> None:
        """Replace an expired record, or one of an earlier attempt of this run, unless
        another run is replacing it already (then wait for that run's lease)."""
        claim_key = LeaseKey(dead.key.region, dead.key.cluster, claim=_short(dead.id))
        claim = self.provider.create_lease(
            claim_key, self.labels(dead.key.cluster), _expiry(CLAIM_TTL)
        )
        if claim is None:
            stale = self.provider.lease(claim_key)
            if stale is not None and expired(stale):
                # Its claimer died between claiming and replacing.
                self.provider.delete_lease(stale)
            else:
                pause(LOOK_FIRST)
            return
        try:
            current = self.provider.lease(dead.key)
            if current is not None and current.id == dead.id:
                self.provider.delete_lease(current)
                why = "an earlier attempt of this run" if self._ours(dead) else "expired"
                self.rt.console.info(
                    f"took the cluster lease of {dead.key.cluster} in {dead.key.region} "
                    f"over ({why}): it was held by {describe(dead)}"
                )
        finally:
            self.provider.delete_lease(claim)

    def _hold(self, lease: Lease) -> None:
        with self._lock:
            self.held.append(lease)
            if self._thread is None:
                self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)
                self._thread.start()

    def _renew(self) -> None:
        """Move every held lease's expiry on; a lease that cannot be renewed before it
        expires, or that another run took over, stops the stage."""
        while not self._stop.wait(RENEW_EVERY):
            with self._lock:
                held = list(self.held)
            for i, lease in enumerate(held):
                expires = _expiry(TTL)
                try:
                    renewed = self.provider.renew_lease(lease, expires)
                except TreadleError as e:
                    if not expired(lease):
                        continue  # a blip: try again before it expires
                    self._lost(lease, f"it could not be renewed ({e})")
                    return
                if not renewed:
                    self._lost(lease, "another run took it over")
                    return
                with self._lock:
                    if self._stop.is_set():
                        return
                    self.held[self.held.index(held[i])] = _with_expiry(lease, expires)

    def _lost(self, lease: Lease, why: str) -> None:
        if self._stop.is_set():
            return  # released meanwhile: the stage is over
        with self._lock:
            # Another run's now: never to be deleted by this one.
            self.held = [held for held in self.held if held.id != lease.id]
        cancel(
            f"lost the cluster lease of {lease.key.cluster} in {lease.key.region}: {why}; "
            "stopped without touching the cluster again",
            LeaseLost,
        )

    def release(self) -> None:
        """Delete every lease held, within a grace period of its own."""
        self._stop.set()
        with self._lock:
            held, self.held = self.held, []
        if not held:
            return
        with self.rt.deadline.grace(RELEASE_SECONDS):
            for lease in held:
                try:
                    if expired(lease):
                        # Not renewed in time: delete it only if nobody replaced it.
                        current = self.provider.lease(lease.key)
                        if current is None or current.id != lease.id:
                            continue
                    self.provider.delete_lease(lease)
                except TreadleError as e:
                    self.rt.console.warn(
                        f"could not release the cluster lease of {lease.key.cluster} in "
                        f"{lease.key.region} ({e}): it expires within {TTL:g}s"
                    )


def leases_of(rt: Runtime) -> Leases:
    """The stage's leases, made on first use and released when the stage ends."""
    found = rt.progress.leases
    if found is None:
        found = rt.progress.leases = Leases(rt.provider, rt)
        rt.exits.callback(found.release)
    assert isinstance(found, Leases)
    return found


def _expiry(seconds: float) -> str:
    return timestamp(now() + timedelta(seconds=seconds))


def _short(record_id: str) -> str:
    """A claim's name part: short, and the same for everyone looking at that record."""
    return hashlib.sha256(record_id.encode()).hexdigest()[:12]


def _with_expiry(lease: Lease, expires: str) -> Lease:
    return replace(lease, expires=expires)
