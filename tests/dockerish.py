"""Fixtures for the tests that need a real Docker engine (the docker and swarm providers).

Without an engine such a test is skipped, saying why; with TREADLE_REQUIRE_DOCKER=1 (as
CI sets it) it fails instead, so that CI cannot pass by skipping. `.ci/docker-setup`
starts an engine and builds the images. Each test gets a region of its own, and every
service and container labelled with it is removed afterwards.

A test module takes them in through its conftest: `from dockerish import *`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from typing import Any, NoReturn

import docker.errors
import pytest
from helpers import Outcome, treadle

from treadle.errors import ProviderUnavailable
from treadle.providers.docker.engine import connect
from treadle.providers.docker.spec import LABEL_REGION

__all__ = [
    "OnEngine",
    "engine",
    "image",
    "image_v2",
    "region",
    "swarm",
    "treadle_on_engine",
    "unhealthy_image",
]

IMAGE = "treadle-test/busybox:1"
IMAGE_V2 = "treadle-test/busybox:2"
# Its HEALTHCHECK always fails.
UNHEALTHY_IMAGE = "treadle-test/unhealthy:1"
SETUP = "run .ci/docker-setup"
CLEANUP_SECONDS = 30.0


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("TREADLE_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (TREADLE_REQUIRE_DOCKER=1: Docker tests must run)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    """The engine's API client (docker.APIClient), reached as the providers reach it."""
    try:
        api = connect()
    except ProviderUnavailable as e:
        unavailable(f"{e} (or {SETUP})")
    missing = [name for name in (IMAGE, IMAGE_V2, UNHEALTHY_IMAGE) if not api.images(name=name)]
    if missing:
        unavailable(f"the test images {', '.join(missing)} are missing: {SETUP}")
    yield api
    api.close()


@pytest.fixture(scope="session")
def swarm(engine: Any) -> Any:
    """The same client, once the engine is known to be a swarm manager."""
    state = (engine.info().get("Swarm") or {}).get("LocalNodeState")
    if state != "active":
        unavailable(f"the Docker engine is not in a swarm ({state}): {SETUP}")
    return engine


@pytest.fixture
def region(engine: Any) -> Iterator[str]:
    """An empty region of the test's own, emptied again afterwards."""
    name = "t" + uuid.uuid4().hex[:8]
    yield name
    remove_region(engine, name)


def remove_region(api: Any, region: str) -> None:
    """Remove every service and container labelled with the region; Swarm removes a
    service's containers on its own, a moment later."""
    filters = {"label": [f"{LABEL_REGION}={region}"]}
    if (api.info().get("Swarm") or {}).get("LocalNodeState") == "active":
        for service in api.services(filters=filters):
            api.remove_service(service["ID"])
    end = time.monotonic() + CLEANUP_SECONDS
    while containers := api.containers(all=True, filters=filters):
        assert time.monotonic() < end, f"containers of {region} left behind: {containers}"
        for container in containers:
            try:
                api.remove_container(container["Id"], force=True)
            except docker.errors.APIError:
                pass  # Swarm is removing it already
        time.sleep(0.2)


@pytest.fixture
def image() -> str:
    return IMAGE


@pytest.fixture
def image_v2() -> str:
    return IMAGE_V2


@pytest.fixture
def unhealthy_image() -> str:
    return UNHEALTHY_IMAGE


def treadle_on_engine(*args: str, env: dict[str, str] | None = None, **kw: Any) -> Outcome:
    """treadle in-process, reaching the engine these tests reach: helpers.treadle keeps
    the machine's DOCKER_HOST away from the stage, so it is handed over here."""
    host = {"DOCKER_HOST": os.environ["DOCKER_HOST"]} if os.environ.get("DOCKER_HOST") else {}
    return treadle(*args, env={**host, **(env or {})}, **kw)


class OnEngine:
    """Mixed into a contract test class: its stages reach the tests' engine."""

    def stage(self, connection_args: list[str], *args: str, **kw: Any) -> Outcome:
        return treadle_on_engine(*args, *connection_args, **kw)
