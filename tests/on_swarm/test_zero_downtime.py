"""No request lost through a real load balancer while treadle changes a cluster on a
swarm: HAProxy configured as docs/traffic.md says (resolving tasks.<alias>), a steady load
through it, and every operation that takes a server group out or brings one in
(tests/under_load.py). Swarm has no --keep-running: the rollback starts the old
group's tasks again."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from dockerish import treadle_on_engine
from under_load import assert_no_request_failed, run_operations

from treadle.providers.engine.spec import LABEL_REGION

pytestmark = pytest.mark.docker


def run(args: Sequence[str]) -> tuple[int, str]:
    outcome = treadle_on_engine(*args)
    return outcome.code, outcome.stderr


def test_no_request_fails_through_haproxy(
    swarm: Any, haproxy: str, region: str, tmp_path: Path
) -> None:
    measured = run_operations(
        swarm,
        run,
        provider="swarm",
        region=region,
        labels={LABEL_REGION: region},
        folder=tmp_path,
    )
    assert_no_request_failed(measured)
