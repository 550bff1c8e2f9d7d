"""Zero downtime, measured with real parts: what requests through a real load balancer
saw while treadle changed the cluster behind it, on the local Docker engine and on Swarm.

    python benchmarks/zero_downtime.py                 # Docker, then Swarm (2-3 minutes)
    python benchmarks/zero_downtime.py --only docker   # or swarm

HAProxy (Debian's 2.6, in the image that tests/images/haproxy describes, built on first
use on the local Debian base that .ci/build-image makes) runs on the cluster's network
with the configuration of docs/traffic.md. Three threads each send it a request every
15 ms (or as soon as the last one is answered) for an endpoint that takes 20 ms and names
the version that served it. Each operation is treadle run as a CI step runs it, a fresh
process per stage: a red/black deploy, its rollback (on Docker both with
--keep-running), a canary then promote, a canary then abort, enable then disable. Per
operation: the requests sent while its stages ran and for a second after, how many
failed (an error status, a reset, or no answer in 10 s), the p99 and the slowest, and for
the rollback the time from its start to the first answer from the server group it
brought back. Everything runs in a region of its own, removed afterwards; the harness is
tests/under_load.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import dockerish  # noqa: E402
from under_load import COLUMNS, Runner, ensure_haproxy_image, run_operations, table  # noqa: E402

from treadle.providers.engine.spec import LABEL_REGION  # noqa: E402

ENGINES = ("docker", "swarm")


def treadle_process(python: str) -> Runner:
    """treadle as a CI step runs it: a fresh process, with this tree's sources."""

    def run(args: Sequence[str]) -> tuple[int, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TREADLE_")}
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])
        )
        done = subprocess.run(
            [python, "-m", "treadle", *args], capture_output=True, text=True, env=env
        )
        return done.returncode, done.stderr

    return run


def title(provider: str) -> str:
    keep = ", red/black and rollback with --keep-running" if provider == "docker" else ""
    return f"zero downtime behind HAProxy, {provider}{keep}"


def measure(
    provider: str, python: str, progress: Callable[[str], None] = lambda line: None
) -> list[tuple[str, ...]] | str:
    """The table's rows for one engine, or why it cannot be measured here."""
    try:
        api = dockerish.connect()
    except Exception as e:  # noqa: BLE001 (no engine: say so)
        return f"no Docker engine ({e})"
    try:
        if provider == "swarm" and not dockerish.in_swarm(api):
            return "the engine is not a swarm manager (docker swarm init)"
        missing = [i for i in (dockerish.IMAGE, dockerish.IMAGE_V2) if not api.images(name=i)]
        if missing:
            return f"no {', '.join(missing)}: run .ci/docker-setup"
        reason = ensure_haproxy_image(api)
        if reason:
            return reason
        region = "zd" + uuid.uuid4().hex[:8]
        try:
            with tempfile.TemporaryDirectory() as folder:
                measured = run_operations(
                    api,
                    treadle_process(python),
                    provider=provider,
                    region=region,
                    labels={LABEL_REGION: region},
                    folder=Path(folder),
                    progress=progress,
                )
        finally:
            dockerish.remove_region(api, region)
        return table(measured)
    finally:
        api.close()


def print_rows(heading: str, rows: list[tuple[str, ...]] | str) -> None:
    print(f"\n{heading}")
    if isinstance(rows, str):
        print(f"  skipped: {rows}")
        return
    widths = [max(len(r[i]) for r in [COLUMNS, *rows]) for i in range(len(COLUMNS))]
    for cells in [COLUMNS, *rows]:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--only", default=",".join(ENGINES), help="docker, swarm, or both (comma-separated)"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter that runs treadle"
    )
    args = parser.parse_args()
    engines = [e for e in ENGINES if e in args.only.split(",")]
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"treadle zero-downtime, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load {load}"
    )
    for provider in engines:
        print(f"  ... {provider}", file=sys.stderr, flush=True)

        def progress(line: str, provider: str = provider) -> None:
            print(f"  ... {provider}: {line}", file=sys.stderr, flush=True)

        print_rows(title(provider), measure(provider, args.python, progress))


if __name__ == "__main__":
    main()
