"""All of treadle's terminal output goes through one Console: logs and progress to stderr,
so that stdout carries nothing but the result JSON. How a line is marked up for the CI
system it runs in (masks, folded sections, error annotations) is the log format's
business (treadle.ci), never the caller's, and so is making inert whatever text a line
quotes from elsewhere."""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TextIO

from treadle.ci import PlainLog


@dataclass
class _Shared:
    """What a console and its children share: one stream's lock, the secrets, and the one
    section that may be open at a time (CI logs cannot nest them, and concurrent regions
    must not interleave them)."""

    log: PlainLog
    lock: threading.Lock = field(default_factory=threading.Lock)
    secrets: list[str] = field(default_factory=list)
    section: str | None = None
    keys: Iterator[int] = field(default_factory=lambda: itertools.count(1))


class Console:
    def __init__(
        self, stream: TextIO | None = None, *, quiet: bool = False, log: PlainLog | None = None
    ) -> None:
        self._stream = stream
        self.quiet = quiet
        self.prefix = ""
        self._shared = _Shared(log or PlainLog())

    def child(self, prefix: str) -> Console:
        """A console sharing this one's stream, lock, masks and section, with a line
        prefix."""
        child = Console.__new__(Console)
        child.__dict__.update(self.__dict__)
        child.prefix = self.prefix + prefix
        return child

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def mask(self, secret: str | None) -> None:
        """Never print this value (a token, a password), whatever message carries it; a CI
        system that hides secrets in its log is told at once, before any line could."""
        if not secret or len(secret) < 4 or secret in self._shared.secrets:
            return
        self._shared.secrets.append(secret)
        for line in self._shared.log.mask(secret):
            self._emit(line)

    def redact(self, text: str) -> str:
        for secret in self._shared.secrets:
            text = text.replace(secret, "***")
        return text

    def _emit(self, line: str) -> None:
        with self._shared.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _line(self, message: str) -> str:
        return self.redact(self.prefix + message)

    def info(self, message: str) -> None:
        if not self.quiet:
            self._emit(self._shared.log.line(self._line(message)))

    def untrusted(self, lines: list[str]) -> None:
        """Lines someone else wrote (a job's log), redacted and made inert by the log
        format, printed together: nothing of ours may fall between (on GitHub they sit in
        a stretch where the runner obeys no command, a mask included)."""
        if self.quiet or not lines:
            return
        marked = self._shared.log.untrusted([self._line(line) for line in lines])
        with self._shared.lock:
            self.stream.write("".join(f"{line}\n" for line in marked))
            self.stream.flush()

    def warn(self, message: str) -> None:
        self._emit(self._shared.log.warning(self._line(message)))

    def error(self, message: str) -> None:
        self._emit(self._shared.log.error(self._line(message)))

    def raw(self, text: str) -> None:
        """A document the user asked for (a dry-run plan), printed as it is but redacted and
        made inert (a spec's string could hold `##[...]`)."""
        with self._shared.lock:
            self.stream.write(self._shared.log.line(self.redact(text)))
            self.stream.flush()

    @contextlib.contextmanager
    def section(self, title: str) -> Iterator[None]:
        """Fold the lines logged inside (a long wait) under `title` where the CI log can.
        Inside an open section, or when quiet, it adds nothing."""
        shared = self._shared
        with shared.lock:
            key = None if self.quiet or shared.section else f"treadle_{next(shared.keys)}"
            shared.section = shared.section or key
        if key is None:
            yield
            return
        start = shared.log.open_section(key, self._line(title))
        if start is not None:
            self._emit(start)
        try:
            yield
        finally:
            end = shared.log.close_section(key)
            if end is not None:
                self._emit(end)
            with shared.lock:
                shared.section = None
