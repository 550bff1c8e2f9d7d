"""Reaching a Docker engine the way the docker CLI does (DOCKER_HOST, DOCKER_TLS_VERIFY,
DOCKER_CERT_PATH, else the local socket), and turning its errors into treadle's. Shared
by the Docker and Swarm providers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import docker
import docker.errors
import requests.exceptions

from treadle.errors import Conflict, ProviderError, ProviderUnavailable

DEFAULT_HOST = "unix:///var/run/docker.sock"
# Connecting asks the engine for its API version: an engine that does not answer within
# this is reported at once instead of holding the stage.
CONNECT_TIMEOUT = 10.0
# Each later call (a container stop waits for the container's grace period on top).
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
    ("timed out", f"no answer within {CONNECT_TIMEOUT:g}s"),
)


def stable(since: str) -> bool:
    """Up for STABLE_SECONDS since an engine timestamp (RFC 3339, nanoseconds)."""
    up = datetime.now(UTC) - datetime.fromisoformat(since)
    return up.total_seconds() >= STABLE_SECONDS


def where() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def connect() -> docker.APIClient:
    try:
        api = docker.APIClient(timeout=CONNECT_TIMEOUT, **docker.utils.kwargs_from_env())
    except docker.errors.DockerException as e:
        text = str(e)
        reason = next((r for pattern, r in _REASONS if pattern in text), text)
        raise ProviderUnavailable(
            f"cannot reach a Docker engine at {where()} ({reason}): {HOW_TO_POINT}"
        ) from None
    api.timeout = CALL_TIMEOUT
    return api


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
