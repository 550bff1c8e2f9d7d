"""What both HTTP seams (the DC/OS client's `DcosClient`, the Docker engine's `Engine`) do
with every request they send: a span in the stage's trace (treadle.tracing) and, with
--verbose, a line for the request and one for its answer (Console.http_request,
Console.http_response). With neither asked for, `exchange()` hands back one shared
object that does nothing."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from treadle import tracing

if TYPE_CHECKING:
    from treadle.console import Console


class Exchange:
    """Nothing observed: what `exchange()` gives when nobody looks."""

    def __enter__(self) -> Exchange:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        return None

    def answered(
        self,
        status: int,
        body: bytes | str | None = None,
        *,
        content_type: str = "",
        note: str = "",
    ) -> None:
        """The answer came: its status and (unless it is a stream, or `note` says why
        it is not shown) its body."""


QUIET = Exchange()


def exchange(
    console: Console | None,
    method: str,
    url: str,
    template: str,
    *,
    body: bytes | str | None = None,
    attempt: int = 0,
    stream: bool = False,
    note: str = "",
) -> Exchange:
    """One request to `url`, whose path is `template` with its ids as placeholders
    (`/v2/apps/{id}`): `attempt` counts earlier tries of the same request, `stream` says
    that its answer is read as it comes, `note` stands for bodies not to be shown."""
    verbose = console is not None and console.verbose
    if not verbose and not tracing.active():
        return QUIET
    return _Observed(
        console if verbose else None, method, url, template, body, attempt, stream, note
    )


class _Observed(Exchange):
    def __init__(
        self,
        console: Console | None,
        method: str,
        url: str,
        template: str,
        body: bytes | str | None,
        attempt: int,
        stream: bool,
        note: str,
    ) -> None:
        self.console, self.method, self.url = console, method, url
        self.body, self.note, self.done = body, note, False
        parts = urlsplit(url)
        self.span = tracing.span(
            f"{method} {template}",
            {
                "http.request.method": method,
                "url.template": template,
                "url.path": parts.path,
                "server.address": parts.hostname,
                "server.port": parts.port,
                "http.request.resend_count": attempt or None,
                "treadle.stream": stream or None,
            },
            client=True,
            current=False,
        )
        self.started = 0.0

    def __enter__(self) -> Exchange:
        if self.console is not None:
            self.console.http_request(self.method, self.url, None if self.note else self.body)
        self.span.__enter__()
        self.started = time.monotonic()
        return self

    def answered(
        self,
        status: int,
        body: bytes | str | None = None,
        *,
        content_type: str = "",
        note: str = "",
    ) -> None:
        self.done = True
        self.span.set({"http.response.status_code": status})
        if status >= 400:
            self.span.fail(str(status))
        if self.console is not None:
            self.console.http_response(
                self.method,
                self.url,
                status,
                time.monotonic() - self.started,
                body,
                content_type=content_type,
                note=self.note or note,
            )

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if isinstance(error, BaseException) and not self.done and self.console is not None:
            self.console.http_response(
                self.method,
                self.url,
                None,
                time.monotonic() - self.started,
                note=f"{type(error).__name__}: {error}",
            )
        self.span.__exit__(kind, error, tb)
