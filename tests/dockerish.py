"""Fixtures for the tests that need a real Docker engine (the docker and swarm providers).

Without an engine such a test is skipped, saying why; with TREADLE_REQUIRE_DOCKER=1 (as
CI sets it) it fails instead, so that CI cannot pass by skipping. `.ci/docker-setup`
starts an engine and builds the images. Each test gets a region of its own, and every
service and container labelled with it is removed afterwards.

A test module takes them in through its conftest: `from dockerish import *`. A contract
test class mixes in `OnEngine` (and `EngineJobs` for run-job).
"""

from __future__ import annotations

import os
import shlex
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import docker.errors
import pytest
import yaml
from contract import JobContract
from helpers import Outcome, treadle
from under_load import HAPROXY_IMAGE, ensure_haproxy_image

from treadle.errors import ProviderUnavailable
from treadle.providers.engine.connection import connect
from treadle.providers.engine.jobs import LABEL_JOB
from treadle.providers.engine.spec import LABEL_REGION

__all__ = [
    "SERVED",
    "OnEngine",
    "engine",
    "haproxy",
    "image",
    "image_v2",
    "region",
    "swarm",
    "treadle_on_engine",
    "unhealthy_image",
]

IMAGE = "treadle-test/busybox:1"
# A spec serving the test image's httpd on port 80, health-checked every 0.5 s.
SERVED = {
    "ports": ["80"],
    "healthcheck": {
        "test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"],
        "interval": "500ms",
        "retries": 3,
    },
}
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
def haproxy(engine: Any) -> str:
    """The load balancer's image (tests/images/haproxy), built on first use."""
    reason = ensure_haproxy_image(engine)
    if reason:
        unavailable(reason)
    return HAPROXY_IMAGE


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
    remove_labelled(api, f"{LABEL_REGION}={region}")


def in_swarm(api: Any) -> bool:
    return (api.info().get("Swarm") or {}).get("LocalNodeState") == "active"


def remove_labelled(api: Any, label: str) -> None:
    """Remove every service and container with the label (`key=value`); Swarm removes a
    service's containers on its own, a moment later. Then the networks, volumes, secrets
    and configs with it, which treadle makes when a spec declares them (labelled with the
    region of the deploy that made them) and never removes."""
    filters = {"label": [label]}
    swarm = in_swarm(api)
    if swarm:
        for service in api.services(filters=filters):
            api.remove_service(service["ID"])
    end = time.monotonic() + CLEANUP_SECONDS
    while containers := api.containers(all=True, filters=filters):
        assert time.monotonic() < end, f"containers labelled {label} left behind: {containers}"
        for container in containers:
            try:
                api.remove_container(container["Id"], force=True, v=True)
            except docker.errors.APIError:
                pass  # Swarm is removing it already
        time.sleep(0.2)
    removals = [
        (api.secrets, "ID", api.remove_secret) if swarm else None,
        (api.configs, "ID", api.remove_config) if swarm else None,
        (api.networks, "Id", api.remove_network),
    ]
    for listing, key, remove in filter(None, removals):
        for found in listing(filters=filters):
            remove_eventually(remove, found[key], end)
    for volume in (api.volumes(filters=filters) or {}).get("Volumes") or []:
        remove_eventually(api.remove_volume, volume["Name"], end)


def remove_eventually(remove: Any, name: str, end: float) -> None:
    """Swarm lets go of a network or secret a moment after a task that used it ends."""
    while True:
        try:
            remove(name)
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError:
            assert time.monotonic() < end, f"{name} is still in use"
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


def deploy_on(
    provider: str, region: str, tmp_path: Path, spec: dict[str, Any] | None = None, *args: str
) -> Outcome:
    """`treadle deploy` of cluster web-prod from the test image, with `spec` as its file."""
    extra: list[str] = []
    if spec is not None:
        spec_file = tmp_path / "spec.yaml"
        spec_file.write_text(yaml.safe_dump(spec))
        extra = ["--spec", str(spec_file)]
    return treadle_on_engine(
        "deploy",
        "--provider",
        provider,
        "--cluster",
        "web-prod",
        "--image",
        IMAGE,
        "--region",
        region,
        "--timeout",
        "60s",
        *extra,
        *args,
    )


class OnEngine:
    """Mixed into a contract test class: its stages reach the tests' engine."""

    def stage(self, connection_args: list[str], *args: str, **kw: Any) -> Outcome:
        return treadle_on_engine(*args, *connection_args, **kw)


class EngineJobs(JobContract):
    """The run-job contract's hooks on a Docker engine (either provider): a job is a shell
    script run by the busybox test image, and a test's job id labels all it leaves."""

    @pytest.fixture
    def job_id(self, engine: Any) -> Iterator[str]:
        job_id = "t" + uuid.uuid4().hex[:8]
        yield job_id
        remove_labelled(engine, f"{LABEL_JOB}={job_id}")

    @pytest.fixture
    def versioned_image(self) -> tuple[str, str]:
        repository, _, tag = IMAGE_V2.partition(":")
        return repository, tag

    def job_args(
        self,
        job_id: str,
        *,
        stdout: str = "",
        stderr: str = "",
        seconds: float = 0,
        files: Mapping[str, str] | None = None,
        exit_code: int = 0,
    ) -> list[str]:
        # What the job prints and writes reaches it through its environment: no text can
        # break the script's quoting.
        env = {"STDOUT": stdout, "STDERR": stderr}
        script = ['printf %s "$STDOUT"', 'printf %s "$STDERR" >&2']
        if seconds:
            script.append(f"sleep {seconds:g}")
        for i, (path, text) in enumerate((files or {}).items()):
            env[f"FILE{i}"] = text
            script.append(f'printf %s "$FILE{i}" > {shlex.quote(path)}')
        script.append(f"exit {exit_code}")
        options = ["--image", IMAGE, "--cmd", "; ".join(script)]
        for key, value in env.items():
            options += ["--env", f"{key}={value}"]
        return options

    def leftovers(self, provider: Any, job_id: str) -> list[str]:
        filters = {"label": [f"{LABEL_JOB}={job_id}"]}
        api = provider.api
        services = (
            [s["Spec"]["Name"] for s in api.services(filters=filters)] if in_swarm(api) else []
        )
        containers = [c["Names"][0] for c in api.containers(all=True, filters=filters)]
        return services + containers

    def job_labels(self, provider: Any, job_id: str) -> Mapping[str, str]:
        """A Swarm job's service labels, else a Docker job's container labels."""
        filters = {"label": [f"{LABEL_JOB}={job_id}"]}
        api = provider.api
        if in_swarm(api) and (services := api.services(filters=filters)):
            [service] = services
            return dict(service["Spec"]["Labels"])
        [container] = api.containers(all=True, filters=filters)
        return dict(container["Labels"])

    def bad_inputs(self, tmp_path: Path) -> list[list[str]]:
        cases = [["--cpus", "0"]]
        for field, value in (("ports", ["80"]), ("healthcheck", {"test": "true"})):
            spec_file = tmp_path / f"{field}.yaml"
            spec_file.write_text(yaml.safe_dump({field: value}))
            cases.append(["--spec", str(spec_file)])
        return cases

    # --- what both engines add to the contract ------------------------------------------

    def test_the_spec_is_laid_under_the_flags(
        self, connection_args: list[str], provider: Any, job_id: str, tmp_path: Path
    ) -> None:
        script = (
            'echo "TREADLE_OUTPUT greeting=$GREETING $NAME"; '
            'echo \'{"from": "spec"}\' > /tmp/written.json; '
            "busybox ln -s /tmp/written.json /tmp/result.json"
        )
        spec_file = tmp_path / "job.yaml"
        spec_file.write_text(
            yaml.safe_dump(
                {
                    "image": IMAGE,
                    "command": ["sh", "-c", script],
                    "environment": {"GREETING": "hello", "NAME": "spec"},
                    "mem_limit": "64m",
                }
            )
        )
        outcome = self.run_job(
            connection_args,
            job_id,
            "--spec",
            str(spec_file),
            "--env",
            "NAME=flag",
            "--output-file",
            "/tmp/result.json",
        )
        assert outcome.code == 0, outcome
        assert outcome.result is not None
        assert outcome.result["outputs"] == {"greeting": "hello flag", "from": "spec"}
        self.assert_nothing_left(provider, job_id)

    def test_a_command_that_cannot_start_fails_with_the_engines_reason(
        self, connection_args: list[str], provider: Any, job_id: str, tmp_path: Path
    ) -> None:
        spec_file = tmp_path / "job.yaml"
        spec_file.write_text(yaml.safe_dump({"command": ["no-such-command"]}))
        outcome = self.run_job(connection_args, job_id, "--spec", str(spec_file), "--image", IMAGE)
        assert outcome.code == 1, outcome
        assert outcome.result is not None
        message = outcome.result["error"]["message"]
        assert '"no-such-command": executable file not found' in message
        self.assert_nothing_left(provider, job_id)
