"""The result of a stage: one JSON document, written whole or not at all, to a file or
stdout, and handed to the CI system the stage runs in (treadle.ci)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from treadle.ci import (
    DOTENV_MAX_BYTES,
    DOTENV_MAX_VARIABLES,
    dotenv,
    github_outputs,
    github_summary,
)

Result = dict[str, Any]


def write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename it into place, so a
    reader sees the old file or the whole new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def to_json(result: Result) -> str:
    return json.dumps(result, indent=2, sort_keys=False) + "\n"


def publish(
    result: Result,
    *,
    output: str | None,
    dotenv_file: str | None,
    environ: Mapping[str, str] = os.environ,
    stdout: Any = None,
    warn: Callable[[str], None] = lambda message: None,
) -> None:
    text = to_json(result)
    if output:
        write_atomically(Path(output), text)
    else:
        import sys

        (stdout or sys.stdout).write(text)
    if dotenv_file and (left_out := dotenv(result, Path(dotenv_file))):
        warn(
            f"{dotenv_file} leaves out {', '.join(left_out)}: multi-line, or past GitLab's "
            f"limits of {DOTENV_MAX_VARIABLES} variables and {DOTENV_MAX_BYTES} bytes "
            "(the result JSON has every field)"
        )
    if environ.get("GITHUB_OUTPUT"):
        github_outputs(result, Path(environ["GITHUB_OUTPUT"]))
    if environ.get("GITHUB_STEP_SUMMARY"):
        github_summary(result, Path(environ["GITHUB_STEP_SUMMARY"]))
