"""HTTP to Marathon, and to Metronome and Mesos through DC/OS: credentials, retries of
transient faults, and the services' errors mapped onto treadle's.

Transient faults (connection resets, 502/503/504, a leader election, a 409 deployment
lock) are retried with backoff until the stage's deadline. A server that never answered
at all is a wrong URL far more often than a blip, so that fails fast with exit 4.
"""

from __future__ import annotations

import contextlib
import random
import re
import ssl
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from treadle.console import Console, hide_user_info
from treadle.errors import (
    Conflict,
    InputError,
    ProviderError,
    ProviderUnavailable,
    Rejected,
    StageFailed,
)
from treadle.exchanges import exchange
from treadle.providers.marathon.auth import Auth
from treadle.waiting import Deadline, pause

RETRY_STATUS = {502, 503, 504}
FIRST_CONTACT_ATTEMPTS = 3
# A connection that is not made within this is not going to be.
CONNECT_SECONDS = 5.0
# Marathon's event stream sends a heartbeat every 10 s (Jetty's EventSource), the Mesos
# master's every 15 s: a minute of silence means the connection is gone.
STREAM_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=60.0)


# The ids in DC/OS paths, as placeholders: a trace groups requests by what they ask.
_IDS = (
    (re.compile(r"(/v1/jobs)/[^/]+/runs/[^/]+"), r"\1/{id}/runs/{run}"),
    (re.compile(r"(/v1/jobs)/(?!\{id\})[^/]+"), r"\1/{id}"),
    (re.compile(r"(/v2/(?:apps|groups|deployments))/.+"), r"\1/{id}"),
    (re.compile(r"(/agent)/[^/]+"), r"\1/{id}"),
)
CREDENTIALS = "(credentials: not shown)"


def path_template(path: str) -> str:
    """`/v2/apps/prod/web-v003` as `/v2/apps/{id}`, `/v1/jobs/ci.x/runs/2024..` as
    `/v1/jobs/{id}/runs/{run}`, `/agent/<agent id>/files/read` as `/agent/{id}/files/read`."""
    for pattern, template in _IDS:
        path = pattern.sub(template, path, count=1)
    return path


def observed_post(http: httpx.Client, console: Console) -> Callable[..., httpx.Response]:
    """`http.post`, traced and shown by --verbose like every other request, its bodies
    never (a login: they hold the credential and the token it buys)."""

    def post(url: str, **kwargs: Any) -> httpx.Response:
        with exchange(console, "POST", url, urlsplit(url).path, note=CREDENTIALS) as seen:
            response = http.post(url, **kwargs)
            seen.answered(response.status_code)
        return response

    return post


def check_url(url: str, flag: str) -> str:
    shown = hide_user_info(url or "")
    try:
        parts = urlsplit(url or "")
        httpx.URL(url or "")
    except (ValueError, httpx.InvalidURL):
        # The parser's own words may quote a piece of the user info: not shown.
        raise InputError(
            f"invalid {flag} {shown!r}: not a URL (check its host and port, and that a "
            "password in it is percent-encoded)"
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(f"invalid {flag} {shown!r}: expected http(s)://host[:port][/path]")
    try:
        _ = parts.port  # parsing it is the check
    except ValueError:
        raise InputError(f"invalid {flag} {shown!r}: the port is not a number") from None
    return url.rstrip("/")


def message_of(response: httpx.Response) -> str:
    """The service's own words from an error body, or a short note on what came instead."""
    try:
        body = response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        return f"{response.status_code} {response.reason_phrase} ({kind} body)"
    if isinstance(body, dict):
        text = str(body.get("message") or body.get("description") or body.get("title") or body)
        details = body.get("details")
        if isinstance(details, list) and details:
            parts = [
                f"{d.get('path', '')}: {'; '.join(map(str, d.get('errors', [])))}"
                for d in details
                if isinstance(d, dict)
            ]
            text += " (" + ", ".join(parts) + ")"
        return text
    return str(body)


def body_of(request: httpx.Request) -> bytes | None:
    """A request's body as built (JSON), for --verbose."""
    try:
        return request.content
    except httpx.RequestNotRead:  # a streamed upload; treadle sends none
        return None


class DcosClient:
    def __init__(
        self,
        base_url: str,
        *,
        auth: Auth,
        deadline: Deadline,
        console: Console,
        what: str = "Marathon",
        verify: bool | ssl.SSLContext = True,
        http: httpx.Client | None = None,
        request_timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url
        self.auth = auth
        self.deadline = deadline
        self.console = console
        self.what = what
        self.http = http or httpx.Client(verify=verify)
        # How long one request may take before it counts as a transient fault (capped by
        # what is left of the stage's deadline).
        self.request_timeout = request_timeout
        self.reached = False
        self.requests = 0

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: Any = None, *, missing_ok: bool = False) -> Any:
        return self.request("GET", path, params=params, missing_ok=missing_ok)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        missing_ok: bool = False,
    ) -> Any:
        """The JSON body of a 2xx answer; None for a 404 when `missing_ok`."""
        response = self._exchange(method, path, params, json)
        return self._answer(method, path, response, missing_ok)

    @contextlib.contextmanager
    def stream(
        self,
        path: str,
        params: Any = None,
        *,
        method: str = "GET",
        json: Any = None,
        accept: str = "text/event-stream",
    ) -> Iterator[httpx.Response]:
        """A request whose answer is a stream of events, read as they arrive (server-sent
        events by default); credentials renewed once on a 401. Not retried: the one
        following the stream decides what to do next."""
        response = self._open_stream(method, path, params, json, accept)
        if response.status_code == 401 and self.auth.renew():
            response.close()
            response = self._open_stream(method, path, params, json, accept)
        try:
            yield response
        finally:
            response.close()

    def _open_stream(
        self, method: str, path: str, params: Any, json: Any, accept: str
    ) -> httpx.Response:
        request = self.http.build_request(
            method,
            self.base_url + path,
            params=params,
            json=json,
            headers={"Accept": accept},
            timeout=STREAM_TIMEOUT,
        )
        self.auth.apply(request)
        self.requests += 1
        with exchange(
            self.console,
            method,
            str(request.url),
            path_template(request.url.path),
            body=body_of(request),
            stream=True,
        ) as seen:
            response = self.http.send(request, stream=True)
            seen.answered(response.status_code, note="(a stream)")
        return response

    def download(self, path: str, params: Any = None) -> bytes | None:
        """The raw body of a GET; None for any 404, because Mesos answers a missing file
        with a bare 404 rather than a JSON one."""
        response = self._exchange("GET", path, params, None)
        if response.status_code == 404:
            return None
        if response.status_code >= 300:
            self._answer("GET", path, response, missing_ok=False)
        return response.content

    def _exchange(self, method: str, path: str, params: Any, json: Any) -> httpx.Response:
        """The first answer that is not a transient fault, credentials renewed once."""
        url = self.base_url + path
        renewed = False
        for attempt in range(1_000_000):
            response = self._send(method, url, params, json, attempt)
            if response is None:
                continue
            status = response.status_code
            if status == 401 and not renewed and self.auth.renew():
                renewed = True
                continue
            if status in RETRY_STATUS or (status == 409 and self._locked(response)):
                self._backoff(attempt, f"{method} {path}: {message_of(response)}")
                continue
            return response
        raise AssertionError("unreachable")

    def timeout(self) -> httpx.Timeout:
        seconds = self.deadline.request_timeout(self.request_timeout)
        return httpx.Timeout(seconds, connect=min(CONNECT_SECONDS, seconds))

    def _send(
        self, method: str, url: str, params: Any, json: Any, attempt: int
    ) -> httpx.Response | None:
        request = self.http.build_request(
            method, url, params=params, json=json, timeout=self.timeout()
        )
        try:
            self.auth.apply(request)
            self.requests += 1
            with exchange(
                self.console,
                method,
                str(request.url),
                path_template(request.url.path),
                body=body_of(request),
                attempt=attempt,
            ) as seen:
                response = self.http.send(request)
                seen.answered(
                    response.status_code,
                    response.content,
                    content_type=response.headers.get("content-type", ""),
                )
        except httpx.TransportError as e:
            reason = str(e) or type(e).__name__
            if isinstance(e, httpx.TimeoutException) and self.deadline.in_grace:
                raise ProviderError(
                    f"{self.what} at {self.base_url} did not answer {request.method} "
                    f"{request.url.path} in time ({reason}): taken for hung"
                ) from None
            if not self.reached and (
                attempt + 1 >= FIRST_CONTACT_ATTEMPTS or self.deadline.expired()
            ):
                raise ProviderUnavailable(
                    f"cannot reach {self.what} at {self.base_url}: {reason} "
                    "(check the URL and that the cluster is up)"
                ) from None
            self._backoff(attempt, f"{request.method} {request.url.path}: {reason}")
            return None
        self.reached = True
        return response

    def _locked(self, response: httpx.Response) -> bool:
        return "locked" in message_of(response).lower()

    def _backoff(self, attempt: int, why: str) -> None:
        if self.deadline.expired():
            raise StageFailed(f"{self.what} kept failing until the timeout: {why}")
        delay = min(5.0, 0.2 * 2**attempt) * random.uniform(0.75, 1.25)
        if attempt >= 1:
            self.console.info(f"{self.what}: {why}; retrying in {delay:.1f}s")
        pause(min(delay, max(0.05, self.deadline.remaining())))

    def _answer(self, method: str, path: str, response: httpx.Response, missing_ok: bool) -> Any:
        status = response.status_code
        if status < 300:
            if not response.content:
                return None
            try:
                return orjson.loads(response.content)
            except ValueError:
                raise ProviderUnavailable(
                    f"{self.base_url} does not look like {self.what}: {method} {path} answered "
                    f"{message_of(response)}"
                ) from None
        message = message_of(response)
        if status == 401:
            raise ProviderUnavailable(
                f"{self.what} at {self.base_url} refused the credentials (401): {self.auth.hint()}"
            )
        if status == 403:
            raise ProviderUnavailable(
                f"{self.what} at {self.base_url} forbids {method} {path} (403): the credentials "
                "lack the permission"
            )
        if status == 404:
            if "json" not in response.headers.get("content-type", ""):
                raise ProviderUnavailable(
                    f"{self.base_url} does not look like {self.what}: {method} {path} answered "
                    f"{message}"
                )
            if missing_ok:
                return None
            raise ProviderError(f"{self.what}: {method} {path}: {message}")
        if status in (400, 422):
            raise Rejected(f"{self.what} rejected {method} {path}: {message}")
        if status == 409:
            raise Conflict(f"{self.what}: {method} {path}: {message}")
        raise ProviderError(f"{self.what}: {method} {path} failed ({status}): {message}")
