"""Marathon's published JSON schema of an app definition, as a validator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable


def app_definition_validator(shared_data: Path) -> Callable[[dict[str, Any]], None]:
    """A callable that raises ValueError naming every place an app definition breaks
    marathon/schema/AppDefinition.json (the emulator answers 422 with it)."""
    from jsonschema import Draft4Validator

    schema = json.loads((shared_data / "marathon/schema/AppDefinition.json").read_text())
    validator = Draft4Validator(schema)

    def validate(definition: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(definition), key=lambda e: list(e.absolute_path))
        if errors:
            raise ValueError("; ".join(
                f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
            ))

    return validate
