"""The command line's application and how its options are declared: each option also
reads TREADLE_<OPTION> from the environment."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand


class GroupedCommand(TyperCommand):
    """A stage's help with its options in groups (its own first, then the connection,
    context and results, ...), plain text: rich's panels would cost a tenth of a second at
    every start."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                panel = getattr(param, "rich_help_panel", None) or "Options"
                groups.setdefault(panel, []).append(record)
        for panel, records in groups.items():
            with formatter.section(panel):
                formatter.write_dl(records)


app = typer.Typer(
    name="treadle",
    rich_markup_mode=None,
    help="Spinnaker-style deployment stages as plain CI steps. Each stage writes a JSON "
    "result (stdout, or --output FILE); logs go to stderr.\n\nExit codes: 0 succeeded, "
    "1 failed, 2 bad input, 3 refused by a safeguard, 4 provider unreachable or "
    "credentials refused.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def option(*names: str, envvar: str | list[str] | None = None, **kwargs: Any) -> Any:
    """An option that also reads TREADLE_<NAME> from the environment."""
    default_env = "TREADLE_" + names[0].lstrip("-").replace("-", "_").upper()
    kwargs.setdefault("metavar", names[0].rsplit("-", 1)[-1].upper())
    return typer.Option(*names, envvar=envvar or default_env, show_envvar=False, **kwargs)


def flag(*names: str, **kwargs: Any) -> Any:
    """A boolean option: no value, so no metavar in the help."""
    return option(*names, metavar="", **kwargs)
