"""The `treadle` command line."""

from treadle.cli.app import app, main

__all__ = ["app", "main"]
