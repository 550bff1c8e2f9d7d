"""The `treadle` command: one subcommand per stage (treadle.cli.commands), each running
through the stage runner (treadle.cli.runner). This layer only turns options into stage
requests and a stage's outcome into a result and an exit code; it holds no deployment
logic."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

try:  # typer vendors click from 0.20 on
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer
    from click import exceptions as click_errors  # type: ignore[no-redef]

from treadle import __version__
from treadle.cli.application import app
from treadle.cli.commands import register

if TYPE_CHECKING:
    from treadle.console import Console

__all__ = ["app", "main"]


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"treadle {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    pass


def usage_console() -> Console:
    """Where a usage error goes: the options were not read, their variables were."""
    from treadle.ci_log import log_format
    from treadle.console import Console

    json = os.environ.get("TREADLE_LOG_FORMAT", "").strip().lower() == "json"
    return Console(log=log_format(), json=json)


def main() -> None:
    """The console script: usage errors as one line, exit codes as documented."""
    from treadle.ci import forget_result_variables
    from treadle.waiting import cancel_on_signals

    forget_result_variables(os.environ)
    register(sys.argv[1:])
    try:
        with cancel_on_signals():
            code = app(standalone_mode=False, prog_name="treadle")
    except click_errors.UsageError as e:
        command = e.ctx.command_path if e.ctx else "treadle"
        usage_console().error(f"{command}: {e.format_message()} (see {command} --help)")
        sys.exit(2)
    except click_errors.ClickException as e:
        usage_console().error(f"treadle: {e.format_message()}")
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("treadle: cancelled\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
