"""The JSON schemas DC/OS publishes for what treadle sends, as validators."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Validator = Callable[[dict[str, Any]], None]


def app_definition_validator(shared_data: Path) -> Validator:
    """Marathon's app definition (marathon/schema/AppDefinition.json)."""
    return schema_validator(shared_data / "marathon/schema/AppDefinition.json")


def job_definition_validator(shared_data: Path) -> Validator:
    """Metronome's job definition (metronome/schema/jobspec.schema.json)."""
    return schema_validator(shared_data / "metronome/schema/jobspec.schema.json")


def schema_validator(schema_file: Path) -> Validator:
    """A callable that raises ValueError naming every place a document breaks the schema
    (the emulators answer 422 with it)."""
    from jsonschema import Draft4Validator

    validator = Draft4Validator(json.loads(schema_file.read_text()))

    def validate(definition: dict[str, Any]) -> None:
        errors = sorted(validator.iter_errors(definition), key=lambda e: list(e.absolute_path))
        if errors:
            raise ValueError(
                "; ".join(f"/{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
            )

    return validate
