"""How treadle fares when things go wrong, as a table:

    python benchmarks/reliability.py

- every stage (deploy, resize, destroy, run-job) under every fault the emulator injects:
  gateway errors, a leader change, an answer slower than the request timeout, deployment
  locks that clear, crash-looping tasks, a deployment that never finishes, a run that stays
  ACTIVE; each cell says whether the stage reached the asked state or failed cleanly;
- the bad inputs of the test suite, each of which must end in exit 2 with nothing sent;
- totals: server groups lost or duplicated, secrets printed (all must be 0).

The same matrix holds CI to it (tests/test_reliability.py).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from emulator import MarathonEmulator  # noqa: E402
from faults import matrix, run_cell  # noqa: E402
from helpers import treadle  # noqa: E402
from on_marathon.test_bad_input import CASES, command_line, seeded  # noqa: E402


def bad_inputs() -> tuple[int, int]:
    """(tried, refused cleanly): exit 2, one line, no mutating request."""
    refused = 0
    with tempfile.TemporaryDirectory() as tmp, MarathonEmulator() as marathon:
        seeded(marathon)
        for case in CASES.values():
            words = command_line(case, Path(tmp), marathon.url)
            before = len(marathon.mutating_requests())
            outcome = treadle(*words)
            one_line = len(outcome.stderr.strip().splitlines()) == 1
            if outcome.code == 2 and one_line and len(marathon.mutating_requests()) == before:
                refused += 1
    return len(CASES), refused


def main() -> None:
    started = time.monotonic()
    cells = [run_cell(stage, fault) for stage, fault in matrix()]
    width = max(len(c.fault) for c in cells)
    print(
        f"{'stage':<9} {'fault':<{width}}  {'outcome':<16} {'lost':>4} {'dup':>4} {'leak':>5} {'time':>6}"
    )
    for c in cells:
        print(
            f"{c.stage:<9} {c.fault:<{width}}  {c.outcome:<16} {c.lost:>4} {c.duplicated:>4} "
            f"{'yes' if c.leaked else 'no':>5} {c.seconds:>5.1f}s"
        )
    print()
    per_stage = Counter(c.stage for c in cells if c.fault != "none")
    survived = Counter(c.stage for c in cells if c.fault != "none" and c.ok)
    for stage in per_stage:
        print(
            f"{stage:<9} faults injected {per_stage[stage]:>2}, survived (reached or failed cleanly) {survived[stage]:>2}"
        )
    tried, refused = bad_inputs()
    print(f"bad inputs tried {tried}, refused with exit 2, one line and nothing sent: {refused}")
    print(
        f"server groups lost: {sum(c.lost for c in cells)}, duplicated: {sum(c.duplicated for c in cells)}, "
        f"secrets leaked: {sum(c.leaked for c in cells)}"
    )
    print(f"({time.monotonic() - started:.0f}s)")
    if not all(c.ok for c in cells) or refused != tried:
        sys.exit(1)


if __name__ == "__main__":
    main()
