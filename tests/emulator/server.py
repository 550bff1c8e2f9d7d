"""HTTP plumbing shared by the DC/OS service emulators.

An emulator is a route table served over real HTTP on 127.0.0.1. Every request goes
through the same pipeline: record it, give the fault hooks a chance to answer first,
check credentials, then route. A later Metronome emulator or fault injector plugs into
that pipeline instead of growing its own server.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from .auth import LOGIN_PATH, Authenticator
from .messages import HttpError, Request, Response, Stream, html_page

Handler = Callable[[Request, "re.Match[str]"], Response]
# A fault hook sees every request before authentication and routing; returning a
# Response answers the request with it (a 5xx, a leader redirect, ...), returning None
# lets the request through. A hook may also sleep to simulate a slow answer.
Fault = Callable[[Request], "Response | None"]


class Router:
    """Ordered route table: the first pattern that fully matches the path wins."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern), handler))

    def dispatch(self, request: Request) -> Response:
        path_known = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            path_known = True
            if method == request.method:
                return handler(request, match)
        if path_known:
            return html_page(405, "Method Not Allowed")
        return html_page(404, "Not Found")


class _Server(ThreadingHTTPServer):
    """Tracks open connections so that stopping really takes the service away."""

    daemon_threads = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that exits with a kept-alive connection open resets it: normal, not
        # worth a traceback on stderr. Anything else still gets one.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """End kept-alive connections: their handler threads would go on answering."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class HttpEmulator:
    """Serves a Router on 127.0.0.1 (port chosen by the OS) from a daemon thread."""

    # URL prefixes under which DC/OS Admin Router exposes this service; stripped before routing.
    service_prefixes: tuple[str, ...] = ()

    def __init__(self, authenticator: Authenticator) -> None:
        self.router = Router()
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.forbidden = False
        self.authenticator = authenticator
        # Time spent answering requests (streams excepted), from the request read to the
        # answer written: what a benchmark subtracts to tell a client's own time.
        self.answering_seconds = 0.0
        self._records_lock = threading.Lock()
        self._streams: set[Stream] = set()
        self._server: _Server | None = None
        self._scheme = "http"
        self._thread: threading.Thread | None = None
        self.router.add(
            "POST", re.escape(LOGIN_PATH), lambda request, _: authenticator.login(request)
        )

    # -- lifecycle -------------------------------------------------------------------

    def start(self, port: int = 0, tls: ssl.SSLContext | None = None) -> str:
        """Serve on 127.0.0.1:`port` (0: any free port); HTTPS when given a TLS context."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = _Server(_handler_class(self), port)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._scheme = "https" if tls is not None else "http"
        # A short poll interval keeps stop() (and so every test using an emulator) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=type(self).__name__,
            daemon=True,
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        # A streaming handler waits for its next chunk, not on its socket: end it first.
        with self._records_lock:
            streams = list(self._streams)
        for stream in streams:
            stream.close()
        self._server.close_connections()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("emulator not started")
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    @property
    def dcos_url(self) -> str:
        """The cluster URL: login and every service prefix are served by the same server."""
        return self.url

    # -- request pipeline ------------------------------------------------------------

    def mutating_requests(self) -> list[Request]:
        """Recorded POST/PUT/PATCH/DELETE to the service itself (not the IAM login)."""
        with self._records_lock:
            return [
                r
                for r in self.requests
                if r.method in ("POST", "PUT", "PATCH", "DELETE") and not r.path.startswith("/acs/")
            ]

    def open_stream(self, on_close: Callable[[], None] | None = None) -> Stream:
        """A streamed response body, ended when the emulator stops (see Stream for
        `on_close`)."""
        stream = Stream(on_close)
        with self._records_lock:
            self._streams = {s for s in self._streams if not s.closed} | {stream}
        return stream

    def answered(self, seconds: float) -> None:
        with self._records_lock:
            self.answering_seconds += seconds

    def is_public(self, request: Request) -> bool:
        """Requests answered without credentials; subclasses widen this."""
        return request.path == LOGIN_PATH

    def handle(self, request: Request) -> Response:
        with self._records_lock:
            self.requests.append(request)
        for fault in list(self.faults):
            answer = fault(request)
            if answer is not None:
                return answer
        if not self.is_public(request):
            denied = self.authenticator.authenticate(request)
            if denied is not None:
                return denied
            if self.forbidden:
                return self.authenticator.forbidden()
        try:
            return self.router.dispatch(request)
        except HttpError as error:
            return error.response
        except Exception as error:  # noqa: BLE001 - an emulator bug: show it, keep serving
            traceback.print_exc()
            return Response(500, {"message": f"emulator error: {error!r}"})

    def strip_prefix(self, path: str) -> str:
        for prefix in self.service_prefixes:
            if path == prefix or path.startswith(prefix + "/"):
                return path[len(prefix) :] or "/"
        return path


def _handler_class(emulator: HttpEmulator) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps connections alive, as clients with connection pools expect.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; with Nagle's algorithm on, a
        # kept-alive connection waits for a delayed ACK (~40 ms) on every response.
        disable_nagle_algorithm = True
        server_version = "emulator"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            started = time.perf_counter()
            parts = urlsplit(self.path)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            request = Request(
                method=self.command,
                path=emulator.strip_prefix(parts.path),
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={name.lower(): value for name, value in self.headers.items()},
                raw_body=raw,
                body=body,
            )
            response = emulator.handle(request)
            if response.reset:
                # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                return
            payload, content_type = response.encode()
            self.send_response(response.status)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            for name, value in response.headers.items():
                self.send_header(name, value)
            if response.stream is not None:
                self._send_stream(response.stream)
                return
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            emulator.answered(time.perf_counter() - started)

        def _send_stream(self, stream: Stream) -> None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            watcher = self._watch_for_hang_up(stream)
            try:
                for chunk in stream:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass  # the client went away
            finally:
                stream.close()
                self.close_connection = True
                if watcher is not None:
                    # Wakes the watcher's read if the client is still there.
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RD)
                    watcher.join()

        def _watch_for_hang_up(self, stream: Stream) -> threading.Thread | None:
            """End the stream as soon as the client hangs up, not at the next chunk,
            which may be long in coming. A client sends nothing while it reads a stream,
            so anything readable on the connection (the end of it, mostly) ends it."""
            if isinstance(self.connection, ssl.SSLSocket):
                # One TLS connection cannot be read and written from two threads: there
                # a hang-up is noticed at the next write.
                return None

            def watch() -> None:
                with contextlib.suppress(OSError):
                    self.connection.recv(1, socket.MSG_PEEK)
                stream.close()

            thread = threading.Thread(target=watch, name="StreamWatcher", daemon=True)
            thread.start()
            return thread

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            # Requests are recorded on the emulator; stderr noise would only clutter test output.
            pass

    return _Handler
