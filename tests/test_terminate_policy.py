"""terminate-instances on the in-memory provider: it returns only once the instances it
killed are gone and their replacements are healthy, however late the cluster notices
the kill (a Swarm manager learns of a killed container a moment after it dies)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from memory import MemoryProvider, Store, runtime, seed, staged

from treadle.providers.base import Health, Instance, ServerGroup
from treadle.stages.selection import Selector
from treadle.stages.terminate import TerminateRequest, terminate_instances

REGION = "local"

pytestmark = pytest.mark.usefixtures("fast_leases")


class NoticesLate(MemoryProvider):
    """A kill takes effect just after the next read of the group, whichever read it is:
    that read still answers as before the kill."""

    def __init__(self, store: Store) -> None:
        super().__init__(store=store)
        self.pending: list[tuple[ServerGroup, list[str]]] = []

    def terminate(self, group: ServerGroup, ids: Sequence[str], *, decrement: bool) -> None:
        self.pending.append((group, list(ids)))

    def _notice(self) -> None:
        while self.pending:
            group, ids = self.pending.pop()
            super().terminate(group, ids, decrement=False)

    def health(self, group: ServerGroup) -> Health:
        try:
            return super().health(group)
        finally:
            self._notice()

    def instances(self, group: ServerGroup) -> list[Instance]:
        try:
            return super().instances(group)
        finally:
            self._notice()


def test_waits_for_the_replacements_when_the_kill_is_noticed_late() -> None:
    store = Store()
    group = seed(store, "web-prod-v000", 2)
    provider = NoticesLate(store)
    assert provider.health(group).ok
    killed = provider.instances(group)[0].id
    with staged(runtime(provider, 5.0, stage="terminate-instances")) as rt:
        request = TerminateRequest(Selector(REGION, server_group="web-prod-v000"), count=1)
        result = terminate_instances(rt, request)
    assert result["terminated"] == [killed]
    running = store.groups[(REGION, "web-prod-v000")].instance_ids
    assert len(running) == 2 and killed not in running
