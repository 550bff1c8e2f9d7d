"""CI holds every stage to the fault matrix: reached or failed cleanly under every fault,
nothing lost, nothing duplicated, no secret printed; and to a fast subset of the safety
rows (real processes at once, killed -9 and rerun, rolled back, hung): no invariant
violated. `python benchmarks/reliability.py` prints both as tables."""

from __future__ import annotations

import pytest
from faults import matrix, run_cell
from safety_table import Spec, ci_rows


@pytest.mark.parametrize(("stage", "fault"), matrix())
def test_stage_under_fault(stage: str, fault: str) -> None:
    cell = run_cell(stage, fault)
    assert cell.ok, cell
    transient = ("none", "connection", "50", "leader", "slow", "409")
    if fault.startswith(transient):
        assert cell.outcome == "reached", f"a transient fault must be ridden out: {cell}"
    else:
        assert cell.outcome == "failed cleanly", cell


@pytest.mark.parametrize("spec", ci_rows(), ids=lambda spec: spec.label)
def test_safety_row(spec: Spec) -> None:
    row = spec.run()
    assert not row.violations, "\n".join(row.violations)
