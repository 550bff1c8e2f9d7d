"""All of treadle's terminal output goes through one Console: logs and progress to stderr,
so that stdout carries nothing but the result JSON."""

from __future__ import annotations

import sys
import threading
from typing import TextIO


class Console:
    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self._stream = stream
        self.quiet = quiet
        self.prefix = ""
        self._lock = threading.Lock()
        self._secrets: list[str] = []

    def child(self, prefix: str) -> Console:
        """A console sharing this one's stream, lock and masks, with a line prefix."""
        child = Console.__new__(Console)
        child.__dict__.update(self.__dict__)
        child.prefix = self.prefix + prefix
        return child

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def mask(self, secret: str | None) -> None:
        """Never print this value (a token, a password), whatever message carries it."""
        if secret and len(secret) >= 4:
            self._secrets.append(secret)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _write(self, line: str) -> None:
        with self._lock:
            self.stream.write(self.redact(self.prefix + line) + "\n")
            self.stream.flush()

    def info(self, message: str) -> None:
        if not self.quiet:
            self._write(message)

    def warn(self, message: str) -> None:
        self._write(f"warning: {message}")

    def error(self, message: str) -> None:
        self._write(f"error: {message}")

    def raw(self, text: str) -> None:
        """A document the user asked for (a dry-run plan), printed as it is."""
        with self._lock:
            self.stream.write(self.redact(text))
            self.stream.flush()
