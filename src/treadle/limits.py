"""How much input treadle accepts, and the cheap checks that hold input to it.

Context files, spec files and placeholders come from CI configuration and from what
earlier jobs wrote, so any of them may be huge, deep or self-referencing. Each check
here refuses such input in well under a second, before a parser or a walker could
recurse, block or allocate its way into a crash. The callers turn the refusals into
`InputError` lines that name the file or the expression.
"""

from __future__ import annotations

import os
import stat
import sys

from treadle.errors import InputError

# A 1,000-app Marathon root group dump is 1.8 MB; real app definitions, Compose files and
# job outputs are kilobytes. Four times the largest real document, and still read fast.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def mebibytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def read_document(path: str, what: str) -> bytes:
    """The bytes of a regular file, or of stdin for `-`, at most MAX_DOCUMENT_BYTES.

    A named pipe, a device (/dev/zero), a directory or a socket is refused before it is
    read: it could block forever or never end. The file is opened with O_NONBLOCK so that
    a pipe swapped in after the first look cannot hang the open either.
    """
    if path == "-":
        return _read_stdin(what)
    try:
        _refuse_unless_regular(os.stat(path).st_mode, path, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except OSError as e:
        raise InputError(f"{what} {path}: cannot read it ({e.strerror})") from None
    try:
        with os.fdopen(fd, "rb") as f:
            status = os.fstat(f.fileno())
            _refuse_unless_regular(status.st_mode, path, what)
            _within_limit(status.st_size, path, what)
            data = f.read(MAX_DOCUMENT_BYTES + 1)  # a file may grow after fstat
            _within_limit(len(data), path, what)
            return data
    except OSError as e:
        raise InputError(f"{what} {path}: cannot read it ({e.strerror})") from None


def _read_stdin(what: str) -> bytes:
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise InputError(f"{what} -: stdin cannot be read")
    try:
        data: bytes = stream.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, ValueError) as e:
        raise InputError(f"{what} -: cannot read stdin ({e})") from None
    _within_limit(len(data), "-", what)
    return data


def _refuse_unless_regular(mode: int, path: str, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    raise InputError(f"{what} {path}: is {kind}, not a regular file (give a file, or - for stdin)")


def _within_limit(size: int, path: str, what: str) -> None:
    if size > MAX_DOCUMENT_BYTES:
        raise InputError(f"{what} {path}: larger than the {mebibytes(MAX_DOCUMENT_BYTES)} limit")
