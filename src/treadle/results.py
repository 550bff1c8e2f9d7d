"""The result of a stage: one JSON document, written whole or not at all, to a file or
stdout, and handed to the CI system the stage runs in (treadle.ci)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
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
from treadle.errors import InputError

Result = dict[str, Any]

# A new result file is readable by all whatever the umask: a later step may read it as
# another user (a container action writes as root, the next step runs as the runner's).
NEW_FILE_MODE = 0o644
# The kernel's own limit on symbolic links followed in one path.
_MAX_LINKS = 40
# Names of one of this process's open file descriptors: written through the descriptor.
_STANDARD = {"/dev/stdout": 1, "/dev/stderr": 2}
_DEV_FD = re.compile(r"/dev/fd/(\d+)")
# A descriptor of any process, a link only the kernel can follow: opened, never replaced.
_PROC_FD = re.compile(r"/proc/(self|thread-self|\d+)(?:/task/\d+)?/fd/(\d+)")


def write_atomically(path: Path, text: str) -> None:
    """Write a result at `path` without ever replacing what is not a result file:

    - A regular file (or nothing yet) is written through a temporary file in the same
      folder, synced, then renamed over it, so a reader sees the old file or the whole new
      one. It keeps its permission bits, its owner and its group; a new file is
      `NEW_FILE_MODE`, and the folders it needs are created. A read-only file (no write
      bit, or none for us) and a folder we cannot write are refused (PermissionError).
      A file of another user, whose owner a new file could not keep, is written in place.
    - A symbolic link is followed to what it names, and that is written by these same
      rules: the link stays a link. A dangling link creates the file it names.
    - Anything else that exists (a device such as /dev/null or /dev/full, a FIFO, a
      terminal) is written in place: opened for writing, never created or replaced.
      /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N are written through this
      process's own descriptor, so a shell's `>>` or `2>&1` keeps its meaning.

    A write that fails (ENOSPC on /dev/full, EISDIR on a folder) raises OSError."""
    target = _destination(path)
    if isinstance(target, int):
        with os.fdopen(os.dup(target), "w", encoding="utf-8") as f:
            f.write(text)
        return
    existing = _stat(target)
    if existing is not None and (
        not stat.S_ISREG(existing.st_mode) or _PROC_FD.fullmatch(str(target))
    ):
        _write_in_place(target, text)
        return
    if problem := _replace_problem(target, existing):
        raise PermissionError(errno.EACCES, problem, str(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    _replace(target, text, existing)


def check_destination(path: str, flag: str) -> None:
    """Before a stage acts: an InputError naming `flag` and `path` when its result could
    not be written there (a folder, a read-only file, a folder we cannot write, a closed
    descriptor). It changes nothing and opens nothing: a missing folder is fine when the
    nearest folder that exists is writable (write_atomically creates it), and a FIFO's
    reader is not looked for."""
    try:
        problem = _destination_problem(Path(path))
    except OSError as e:
        problem = e.strerror or str(e)
    if problem:
        raise InputError(f"{flag} {path}: {problem}")


def _destination(path: Path) -> int | Path:
    """Where writing `path` lands: one of our descriptors, or the path that its chain of
    symbolic links (followed one at a time, to see each name) ends at."""
    current = os.path.join(os.getcwd(), path)
    for _ in range(_MAX_LINKS):
        name = os.path.normpath(current)
        if name in _STANDARD:
            return _STANDARD[name]
        if match := _DEV_FD.fullmatch(name):
            return int(match.group(1))
        if match := _PROC_FD.fullmatch(name):
            ours = match.group(1) in ("self", "thread-self", str(os.getpid()))
            return int(match.group(2)) if ours else Path(current)
        try:
            link = os.readlink(current)
        except OSError:  # not a link, or nothing there: the end of the chain
            return Path(current)
        current = os.path.join(os.path.dirname(current), link)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), str(path))


def _stat(target: Path) -> os.stat_result | None:
    try:
        return target.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None


def _destination_problem(path: Path) -> str | None:
    target = _destination(path)
    if isinstance(target, int):
        try:
            mode = fcntl.fcntl(target, fcntl.F_GETFL) & os.O_ACCMODE
        except OSError:
            return f"file descriptor {target} is not open"
        return (
            None if mode in (os.O_WRONLY, os.O_RDWR) else f"file descriptor {target} is read-only"
        )
    existing = _stat(target)
    if existing is None or stat.S_ISREG(existing.st_mode):
        return _replace_problem(target, existing)
    if stat.S_ISDIR(existing.st_mode):
        return "is a folder"
    if stat.S_ISSOCK(existing.st_mode):
        return "is a socket"
    return None if os.access(target, os.W_OK) else "cannot be written"


def _replace_problem(target: Path, existing: os.stat_result | None) -> str | None:
    """Why a regular file at `target` could not be written or created, or None."""
    if existing is not None and (not existing.st_mode & 0o222 or not os.access(target, os.W_OK)):
        return "is read-only"
    for folder in [target.parent, *target.parent.parents]:
        try:
            found = folder.stat()
        except (FileNotFoundError, NotADirectoryError):
            continue  # created on writing
        if not stat.S_ISDIR(found.st_mode):
            return f"{folder} is not a folder"
        return None if os.access(folder, os.W_OK | os.X_OK) else f"cannot write in {folder}"
    return None


def _replace(target: Path, text: str, existing: os.stat_result | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if existing is not None:
                mine = os.fstat(fd)
                owner = (existing.st_uid, existing.st_gid)
                if owner != (mine.st_uid, mine.st_gid):
                    try:
                        os.fchown(fd, *owner)
                    except PermissionError:
                        # Renamed over, another user's file would become ours.
                        Path(tmp).unlink()
                        _write_in_place(target, text)
                        return
            os.fchmod(fd, NEW_FILE_MODE if existing is None else existing.st_mode & 0o777)
            f.write(text)
            f.flush()
            os.fsync(fd)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_in_place(target: Path, text: str) -> None:
    """Open what is there for writing; never create it."""
    fd = os.open(target, os.O_WRONLY | os.O_TRUNC | os.O_NOCTTY)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)


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
