"""The server group a stage acts on, from the Target option group."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING

from treadle.cli.options import Target

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.selection import Selector


def selector(target: Target, context: Context) -> Selector:
    from treadle.stages.selection import Selector

    values = {
        f.name: context.text(getattr(target, f.name), f"--{f.name.replace('_', '-')}")
        for f in fields(Target)
    }
    return Selector(region=values.pop("region") or "", **values)
