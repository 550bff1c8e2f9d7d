"""Running treadle in-process the way a CI step runs it: argv in; exit code, the result
JSON and stderr out."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

from treadle.cli import main

# Variables from the machine running the tests must not steer the stage under test.
_FOREIGN = (
    "TREADLE_",
    "DCOS_",
    "GITHUB_",
    "GITLAB_",
    "CI_",
    "DOCKER_HOST",
    "OTEL_",
    "TRACEPARENT",
    "TRACESTATE",
)


@dataclass
class Outcome:
    code: int
    result: dict[str, Any] | None
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(("error:", "treadle"))]

    def __str__(self) -> str:
        return f"exit {self.code}\nstderr:\n{self.stderr}\nstdout:\n{self.stdout}"


def treadle(*args: str, env: dict[str, str] | None = None, output: Path | None = None) -> Outcome:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    clean.update(env or {})
    out, err = io.StringIO(), io.StringIO()
    argv = ["treadle", *args]
    code = 0
    with mock.patch.dict(os.environ, clean, clear=True), mock.patch.object(sys, "argv", argv):
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    text = output.read_text() if output and output.exists() else out.getvalue()
    try:
        result = json.loads(text) if text.strip() else None
    except json.JSONDecodeError:
        result = None
    return Outcome(code, result, out.getvalue(), err.getvalue())
