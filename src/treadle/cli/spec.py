"""A spec file (`--spec`): a JSON or YAML object whose strings may hold placeholders."""

from __future__ import annotations

from typing import Any

from treadle.context import Context, load_document
from treadle.errors import InputError


def load_spec(path: str | None, context: Context) -> dict[str, Any] | None:
    if not path:
        return None
    spec = load_document(path, "spec file")
    if not isinstance(spec, dict):
        raise InputError(
            f"spec file {path}: expected an object at the top, found {type(spec).__name__}"
        )
    rendered: dict[str, Any] = context.render(spec, f"spec file {path}")
    return rendered
