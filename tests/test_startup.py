"""What starting treadle costs: `--version` is answered before the CLI and its libraries
load, and says the same as the CLI would."""

from __future__ import annotations

import subprocess
import sys

from helpers import treadle

from treadle import __version__


def test_version_loads_nothing_but_treadle() -> None:
    code = (
        "import sys; sys.argv = ['treadle', '--version']\n"
        "from treadle.__main__ import main\n"
        "main()\n"
        "print([m for m in ('typer', 'httpx', 'yaml', 'jmespath') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.splitlines() == [f"treadle {__version__}", "[]"]


def test_the_cli_tells_the_same_version() -> None:
    outcome = treadle("--version")
    assert (outcome.code, outcome.stdout) == (0, f"treadle {__version__}\n")
