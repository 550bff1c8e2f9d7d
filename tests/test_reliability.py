"""CI holds every stage to the fault matrix: reached or failed cleanly under every fault,
nothing lost, nothing duplicated, no secret printed. `python benchmarks/reliability.py`
prints the same matrix as a table."""

from __future__ import annotations

import pytest
from faults import matrix, run_cell


@pytest.mark.parametrize(("stage", "fault"), matrix())
def test_stage_under_fault(stage: str, fault: str) -> None:
    cell = run_cell(stage, fault)
    assert cell.ok, cell
    transient = ("none", "connection", "50", "leader", "slow", "409")
    if fault.startswith(transient):
        assert cell.outcome == "reached", f"a transient fault must be ridden out: {cell}"
    else:
        assert cell.outcome == "failed cleanly", cell
