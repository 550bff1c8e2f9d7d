"""Reaching a Docker engine the way the docker CLI does (DOCKER_HOST, DOCKER_TLS_VERIFY,
DOCKER_CERT_PATH, else the local socket), every call bounded by the stage's deadline, and
turning its errors into treadle's. Shared by the Docker and Swarm providers."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import docker
import docker.errors
import docker.utils
import requests.exceptions

from treadle.errors import Conflict, ProviderError, ProviderUnavailable
from treadle.exchanges import exchange

if TYPE_CHECKING:
    import requests

    from treadle.console import Console
    from treadle.waiting import Deadline

DEFAULT_HOST = "unix:///var/run/docker.sock"
# One call, unless --request-timeout says otherwise (a container stop waits for the
# container's grace period on top).
CALL_TIMEOUT = 60.0
# How long an instance must have been up to count as running when it may be crashing:
# the engine reports a container or task running between two crashes too.
STABLE_SECONDS = 1.0
HOW_TO_POINT = (
    "start the Docker daemon, or set DOCKER_HOST to an engine that runs "
    "(unix:///path/to/docker.sock, or tcp://HOST:2376 with DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)"
)
# What the SDK's flattened connection errors mean, for a one-line message.
_REASONS = (
    ("No such file or directory", "no Docker socket there"),
    ("Connection refused", "connection refused"),
    ("Permission denied", "permission denied: is this user in the docker group?"),
    ("timed out", "no answer in time"),
)


# The ids in Engine API paths, as placeholders: a trace groups requests by what they ask
# (an image's name may hold slashes; `json`, `create` and `prune` are verbs, not ids).
_IDS = (
    (re.compile(r"(/images)/(.+)/(json|history|push|tag|get)$"), r"\1/{name}/\3"),
    (
        re.compile(
            r"(/(?:containers|services|tasks|networks|nodes|volumes|exec|secrets|configs))"
            r"/(?!(?:json|create|prune)$)[^/]+"
        ),
        r"\1/{id}",
    ),
)


def path_template(path: str) -> str:
    """`/v1.41/containers/3f2a.../json` as `/v1.41/containers/{id}/json`."""
    for pattern, template in _IDS:
        path = pattern.sub(template, path, count=1)
    return path


def stable(since: str) -> bool:
    """Up for STABLE_SECONDS since an engine timestamp (RFC 3339, nanoseconds)."""
    up = datetime.now(UTC) - datetime.fromisoformat(since)
    return up.total_seconds() >= STABLE_SECONDS


def where() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


class Engine(docker.APIClient):
    """The Docker SDK's client, each call's timeout capped by what is left of the stage's
    deadline (the SDK reads `timeout` for every call, and adds a stop's grace to it)."""

    def __init__(
        self,
        deadline: Deadline | None,
        limit: float,
        console: Console | None = None,
        **kwargs: Any,
    ) -> None:
        self._deadline, self._limit, self._console = deadline, limit, console
        # Asks the engine for its API version, within the limit (set again below: the
        # SDK takes whole seconds here).
        super().__init__(timeout=math.ceil(limit), **kwargs)
        self._limit = limit

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        """Every call the SDK makes (requests hands each one here): traced, and shown by
        --verbose; the body of an answer read as a stream (logs, events) is not."""
        url = request.url or ""
        streamed = bool(kwargs.get("stream"))
        with exchange(
            self._console,
            request.method or "GET",
            url,
            path_template(urlsplit(url).path),
            body=request.body if isinstance(request.body, bytes | str) else None,
            stream=streamed,
        ) as seen:
            response = super().send(request, **kwargs)
            seen.answered(
                response.status_code,
                None if streamed else response.content,
                content_type=response.headers.get("Content-Type", ""),
                note="(a stream)" if streamed else "",
            )
        return response

    # requests, which the SDK hands it to, takes any number of seconds.
    @property  # type: ignore[override]
    def timeout(self) -> float:
        if self._deadline is None:
            return self._limit
        return self._deadline.request_timeout(self._limit)

    @timeout.setter
    def timeout(self, value: float) -> None:
        self._limit = value


def connect(
    deadline: Deadline | None = None,
    request_timeout: float = CALL_TIMEOUT,
    console: Console | None = None,
) -> Engine:
    """A client of the engine, which it asks for its API version at once: an engine that
    does not answer is reported now, not in the middle of a stage. `console`: where
    --verbose shows its requests."""
    try:
        return Engine(deadline, request_timeout, console, **docker.utils.kwargs_from_env())
    except docker.errors.DockerException as e:
        text = str(e)
        reason = next((r for pattern, r in _REASONS if pattern in text), text)
        raise ProviderUnavailable(
            f"cannot reach a Docker engine at {where()} ({reason}): {HOW_TO_POINT}"
        ) from None


@contextlib.contextmanager
def translated(action: str) -> Iterator[None]:
    """Engine errors as treadle's, naming what treadle was doing; the engine's own
    message (`explanation`) says why."""
    try:
        yield
    except docker.errors.APIError as e:
        kind = Conflict if e.status_code == 409 else ProviderError
        raise kind(f"{action}: {e.explanation or e}") from e
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        raise ProviderError(
            f"{action}: the Docker engine at {where()} stopped answering ({e})"
        ) from e
