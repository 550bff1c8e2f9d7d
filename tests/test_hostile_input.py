"""Hostile files as context or spec: one `error:` line naming the file, exit 2, a result
written, no traceback, and all of it fast: nothing deep, huge, self-referencing or endless
may crash treadle or hang it."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import Outcome, treadle

from treadle.context import load_document
from treadle.errors import InputError
from treadle.limits import MAX_DOCUMENT_BYTES

# Only a guard against hangs and minute-long parses: each case takes milliseconds.
QUICK = 2.0

DEEP = 100_000


def billion_laughs() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefghi", "bcdefghij", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


def text(content: str) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        path.write_text(content)
        return path

    return write


def sparse(size: int) -> Callable[[Path], Path]:
    def write(path: Path) -> Path:
        with path.open("wb") as f:
            f.truncate(size)
        return path

    return write


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def directory(path: Path) -> Path:
    path.mkdir()
    return path


def dev_zero(path: Path) -> Path:
    return Path("/dev/zero")


# Each case: how to make it (given a path to use), and what the error line says.
HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "100k-deep JSON array": (text("[" * DEEP + "]" * DEEP), "nested deeper than 64"),
    "100k-deep JSON object": (text('{"a":' * DEEP + "1" + "}" * DEEP), "nested deeper than 64"),
    "100k-deep YAML flow": (text("a: " + "[" * DEEP + "]" * DEEP), "nested deeper than 64"),
    "deep YAML blocks": (
        text("".join("  " * i + f"k{i}:\n" for i in range(200))),
        "nested deeper than 64",
    ),
    "billion laughs": (text(billion_laughs()), "with aliases expanded"),
    "aliases to a long string": (
        text("s: &s " + "x" * 1_000_000 + "\nl: [" + ", ".join(["*s"] * 20) + "]\n"),
        "expands through its aliases beyond",
    ),
    "cyclic alias": (text("a: &a [1, *a]\n"), "the alias *a refers to itself"),
    "cyclic alias in a mapping": (text("a: &a {b: *a}\n"), "the alias *a refers to itself"),
    "named pipe": (fifo, "is a named pipe, not a regular file"),
    "/dev/zero": (dev_zero, "is a character device, not a regular file"),
    "directory": (directory, "is a directory, not a regular file"),
    "one byte over the size limit": (sparse(MAX_DOCUMENT_BYTES + 1), "larger than the 8 MiB"),
    "100 MB": (sparse(100 * 1024 * 1024), "larger than the 8 MiB limit"),
    "huge integer": (text('{"n": ' + "9" * 5000 + "}"), "integer too long"),
}


@pytest.fixture(params=sorted(HOSTILE))
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    make, fix = HOSTILE[request.param]
    return make(tmp_path / "hostile.yaml"), fix


@pytest.mark.parametrize("what", ["context file", "spec file"])
def test_a_hostile_document_is_one_input_error_quickly(hostile, what):
    path, fix = hostile
    started = time.monotonic()
    with pytest.raises(InputError) as e:
        load_document(str(path), what)
    assert time.monotonic() - started < QUICK
    message = str(e.value)
    assert message.startswith(f"{what} {path}: ") and fix in message
    assert "\n" not in message


def deploy(tmp_path: Path, *args: str) -> tuple[Outcome, str]:
    """A deploy to a Marathon that nothing listens on: bad input must end it first.
    Returns the outcome and its one `error:` line."""
    result = tmp_path / "result.json"
    started = time.monotonic()
    outcome = treadle(
        "deploy",
        "--provider",
        "marathon",
        "--marathon-url",
        "http://127.0.0.1:9",
        "--app",
        "web",
        "--image",
        "x:1",
        *args,
        "--output",
        str(result),
        output=result,
    )
    assert time.monotonic() - started < QUICK, outcome
    assert outcome.code == 2, outcome
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, outcome
    assert "Traceback" not in outcome.stderr, outcome
    assert outcome.result is not None, outcome
    assert outcome.result["error"]["type"] == "InputError"
    return outcome, errors[0]


@pytest.mark.parametrize("flag", ["--context", "--spec"])
def test_a_hostile_file_ends_the_stage_with_exit_2_and_a_result(hostile, flag, tmp_path):
    path, fix = hostile
    outcome, error = deploy(tmp_path, flag, str(path))
    assert str(path) in error and fix in error
    assert str(path) in outcome.result["error"]["message"]


def test_a_hostile_expression_ends_the_stage_with_exit_2_and_a_result(tmp_path):
    context = tmp_path / "context.json"
    context.write_text('{"tags": ["a", "b"]}')
    doubling = "|".join(["[@, @]"] * 60)
    _, error = deploy(tmp_path, "--context", str(context), "--detail", "{{ " + doubling + " }}")
    assert "in --detail builds more than 8 MiB" in error and len(error) < 300


def test_a_socket_is_not_read(tmp_path):
    path = tmp_path / "s"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
    except OSError as e:  # a tmp_path longer than a socket address may be
        pytest.skip(f"cannot bind a Unix socket at {path}: {e}")
    with server, pytest.raises(InputError, match="is a socket, not a regular file"):
        load_document(str(path), "context file")
