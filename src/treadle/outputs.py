"""Where a stage's result goes: the JSON file (or stdout), and each CI system's own way of
handing values to later steps. Every CI quirk lives here and nowhere else."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

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


def scalar_fields(result: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """Scalar fields as text, nested objects flattened one level (`error_message`)."""
    for key, value in result.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and not prefix:
            yield from scalar_fields(value, prefix=f"{name}_")
        elif isinstance(value, bool):
            yield name, "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            yield name, str(value)
        elif value is None:
            yield name, ""


def github_outputs(result: Result, path: Path) -> None:
    """Step outputs for GitHub Actions: scalar fields and the whole result, multi-line
    values written with a delimiter that cannot occur in them."""
    lines = []
    for name, value in [*scalar_fields(result), ("result", json.dumps(result))]:
        if "\n" in value:
            delimiter = f"treadle_{uuid.uuid4().hex}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    with path.open("a", encoding="utf-8") as f:
        f.writelines(lines)


def github_summary(result: Result, path: Path) -> None:
    icon = {"succeeded": "✅", "failed": "❌", "refused": "⛔"}.get(result.get("status", ""), "")
    rows = [f"### {icon} treadle {result.get('stage')}: {result.get('status')}\n", "\n"]
    rows += ["| field | value |\n", "|---|---|\n"]
    for name, value in scalar_fields(result):
        if name not in ("stage", "status") and value:
            cell = value.replace("|", "\\|")
            rows.append(f"| {name} | `{cell}` |\n")
    with path.open("a", encoding="utf-8") as f:
        f.writelines(rows + ["\n"])


def dotenv(result: Result, path: Path) -> None:
    """`TREADLE_<FIELD>=value` lines for GitLab's artifacts:reports:dotenv, which takes
    single-line values only."""
    lines = [
        f"TREADLE_{name.upper()}={value}\n"
        for name, value in scalar_fields(result)
        if "\n" not in value
    ]
    write_atomically(path, "".join(lines))


def publish(
    result: Result,
    *,
    output: str | None,
    dotenv_file: str | None,
    environ: Mapping[str, str] = os.environ,
    stdout: Any = None,
) -> None:
    text = to_json(result)
    if output:
        write_atomically(Path(output), text)
    else:
        import sys

        (stdout or sys.stdout).write(text)
    if dotenv_file:
        dotenv(result, Path(dotenv_file))
    if environ.get("GITHUB_OUTPUT"):
        github_outputs(result, Path(environ["GITHUB_OUTPUT"]))
    if environ.get("GITHUB_STEP_SUMMARY"):
        github_summary(result, Path(environ["GITHUB_STEP_SUMMARY"]))
