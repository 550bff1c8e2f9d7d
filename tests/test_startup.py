"""What starting treadle costs: `--version` is answered before the CLI and its libraries
load, and says the same as the CLI would."""

from __future__ import annotations

import os
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


def test_a_stage_untraced_loads_no_opentelemetry() -> None:
    """Tracing off (no OTEL_EXPORTER_OTLP_ENDPOINT), a stage that runs imports none of it."""
    code = (
        "import sys; sys.argv = ['treadle', 'find-image', '--cluster', 'web', "
        "'--marathon-url', 'http://127.0.0.1:9', '--request-timeout', '0.2s']\n"
        "from treadle.__main__ import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    print(e.code, 'treadle.tracing' in sys.modules,\n"
        "          [m for m in sys.modules if m.startswith('opentelemetry')])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TREADLE_"))}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    # The last line, after the result's JSON.
    assert out.splitlines()[-1] == "4 True []"


def test_a_stage_loads_no_command_line_of_httpx() -> None:
    """httpx's own command line (click, rich, pygments: installed with treadle's
    dependencies) would cost every stage's start about 30 ms; a stage never loads it."""
    code = (
        "import sys; sys.argv = ['treadle', 'find-image', '--cluster', 'web', "
        "'--marathon-url', 'http://127.0.0.1:9', '--request-timeout', '0.2s']\n"
        "from treadle.__main__ import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    print(e.code, 'httpx' in sys.modules,\n"
        "          [m for m in ('rich', 'pygments', 'click') if m in sys.modules])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TREADLE_"))}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert out.splitlines()[-1] == "4 True []"
