"""Request and response values passed between the HTTP server and the handlers."""

from __future__ import annotations

import json
import queue
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Request:
    """One received request, as handlers and tests see it."""

    method: str
    path: str  # without the service prefix (/service/marathon) and without the query
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    raw_body: bytes
    body: Any  # parsed JSON, or None when empty or malformed

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def flag(self, name: str, default: bool) -> bool:
        value = self.param(name)
        return default if value is None else value.lower() == "true"


class Stream:
    """A response body sent while it is produced (server-sent events): other threads
    send() chunks until close() ends it; the server closes it too when it stops or the
    client goes away.

    `on_close` runs in the thread that closes the stream (at each close): a producer
    sleeping until its next chunk is due hears of the end from it instead of finding
    out at its next send."""

    def __init__(self, on_close: Callable[[], None] | None = None) -> None:
        self._chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._on_close = on_close
        self.closed = False

    def send(self, chunk: bytes) -> None:
        if not self.closed:
            self._chunks.put(chunk)

    def close(self) -> None:
        self.closed = True
        self._chunks.put(None)
        if self._on_close is not None:
            self._on_close()

    def __iter__(self) -> Iterator[bytes]:
        while (chunk := self._chunks.get()) is not None:
            yield chunk


@dataclass
class Response:
    status: int
    # dict/list: JSON; str: text (content_type says which); bytes: sent as they are; None: empty
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    # Sent chunk by chunk (chunked transfer encoding) instead of `body`, until it ends.
    stream: Stream | None = None
    # No answer at all: the connection is reset (a fault, as a crashing proxy does).
    reset: bool = False

    def encode(self) -> tuple[bytes, str | None]:
        if self.body is None:
            return b"", self.content_type
        if isinstance(self.body, bytes):
            return self.body, self.content_type or "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), self.content_type or "text/plain; charset=utf-8"
        return json.dumps(self.body).encode(), self.content_type or JSON_TYPE


class HttpError(Exception):
    """Raised by a handler to answer with an error response."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def html_page(status: int, title: str) -> Response:
    """An nginx-style error page, as Admin Router (and Jetty for unknown paths) answer."""
    body = (
        f"<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {title}</h1></center>\r\n<hr><center>openresty</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Response(status, body, content_type="text/html")
