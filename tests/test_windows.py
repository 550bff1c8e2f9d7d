"""The gate before a stage's first change: a jitter that would outlast what --timeout
leaves refuses the stage with nothing changed, instead of changing the cluster after its
deadline."""

from __future__ import annotations

import pytest
from memory import MemoryProvider, Store, runtime, seed, staged

from treadle.errors import Refused
from treadle.naming import Cluster
from treadle.stages.deploy import deploy
from treadle.stages.deploy_plan import Request
from treadle.stages.windows import Schedule

pytestmark = pytest.mark.usefixtures("fast_leases")


def test_a_jitter_longer_than_the_time_left_refuses_before_any_change() -> None:
    store = Store()
    seed(store, "web-prod-v000", 2)
    provider = MemoryProvider(store=store)
    rt = runtime(provider, 2.0, stage="deploy", schedule=Schedule(jitter=(30.0, 30.0)))
    with pytest.raises(Refused, match="--jitter drew 30.0s"), staged(rt):
        deploy(rt, Request(Cluster("web", "prod"), "web:2", strategy="red-black"))
    assert provider.changes() == []
