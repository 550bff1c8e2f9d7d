"""The `treadle` command line. `app` here is the whole of it, every stage registered;
`main` registers only the stage it is asked to run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.cli.entry import main

if TYPE_CHECKING:
    import typer

    app: typer.Typer

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from treadle.cli.application import app
        from treadle.cli.commands import register

        register()
        return app
    raise AttributeError(name)
