"""How treadle fares when things go wrong, as tables:

    python benchmarks/reliability.py [--quick] [--seed N] [--no-engines]

- every stage (deploy, resize, destroy, run-job) under every fault the emulator injects:
  gateway errors, a leader change, an answer slower than the request timeout, deployment
  locks that clear, crash-looping tasks, a deployment that never finishes, a run that stays
  ACTIVE; each cell says whether the stage reached the asked state or failed cleanly;
- the bad inputs of the test suite, each of which must end in exit 2 with nothing sent;
- totals: server groups lost or duplicated, secrets printed (all must be 0);
- safety, with real treadle processes on the emulator and, when an engine is there, on
  Docker and Swarm (tests/safety_table.py): 2 and 5 deploys at once (each strategy, with
  and without run keys), deploys killed -9 at random points and run again (20 per strategy
  on the emulator, fewer on the engines), a rollback in the middle of a rolling step, and
  a cluster that stops answering; each row counts the violations of the invariants in
  tests/scenarios.py (all must be 0). --quick runs fewer of them.

The same matrix, and a fast subset of the safety rows, hold CI to it
(tests/test_reliability.py).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

from emulator import MarathonEmulator  # noqa: E402
from faults import matrix, run_cell  # noqa: E402
from helpers import treadle  # noqa: E402
from on_marathon.test_bad_input import CASES, command_line, seeded  # noqa: E402
from safety_table import places, print_rows, rows  # noqa: E402


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


def safety(quick: bool, seed: int, engines: bool) -> int:
    """The safety table; how many invariant violations it found."""
    print(
        f"\nsafety: real treadle processes at once, killed -9 and run again, rolled back, "
        f"hung (seed {seed}{', quick' if quick else ''})"
    )
    table = []
    with places(engines) as (found, missing):
        for why in missing:
            print(f"not run on {why}")
        for spec in rows(found, quick, seed):
            table.append(spec.run())
            print(f"  {spec.backend} {spec.label}: {table[-1].seconds:.0f}s", file=sys.stderr)
    print_rows(table)
    violations = [f"{r.backend}, {r.scenario}: {v}" for r in table for v in r.violations]
    print(f"invariant violations: {len(violations)}")
    for violation in violations[:20]:
        print(f"  {violation}")
    return len(violations)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer safety rows and trials")
    parser.add_argument("--seed", type=int, default=None, help="of the random kill points")
    parser.add_argument(
        "--no-engines", action="store_true", help="the emulator only, even with an engine here"
    )
    options = parser.parse_args()
    seed = options.seed if options.seed is not None else random.randrange(10**6)
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
    violations = safety(options.quick, seed, not options.no_engines)
    print(f"({time.monotonic() - started:.0f}s)")
    if not all(c.ok for c in cells) or refused != tried or violations:
        sys.exit(1)


if __name__ == "__main__":
    main()
