"""Fixtures for the tests that run treadle the way each CI system does: its container
image on the local engine, GitHub's runner for a Docker action, gitlab-ci-local, and
Groovy for the Jenkins library.

Like the Docker tests, these skip without what they need, saying how to get it, and fail
instead under TREADLE_REQUIRE_DOCKER=1 (as in CI, where .ci/build-image and .ci/ci-tools
provide it all).
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from dockerish import *  # noqa: F403  (the engine fixtures)
from dockerish import unavailable

from .running import IMAGE_UNDER_TEST, ROOT


@pytest.fixture(scope="session")
def docker_cli() -> str:
    found = shutil.which("docker")
    if found is None:
        unavailable("the docker client is missing: run .ci/docker-setup")
    return found


@pytest.fixture(scope="session")
def treadle_image(engine: Any, docker_cli: str) -> str:
    if not engine.images(name=IMAGE_UNDER_TEST):
        unavailable(f"the image {IMAGE_UNDER_TEST} is missing: run .ci/build-image")
    return IMAGE_UNDER_TEST


@pytest.fixture(scope="session")
def docker_socket(engine: Any) -> Path:
    """The engine's socket on this machine, which a container reaches through a mount."""
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if not host.startswith("unix://"):
        unavailable(
            f"DOCKER_HOST={host}: mounting the engine into a container needs its unix socket"
        )
    return Path(host.removeprefix("unix://"))


@pytest.fixture(scope="session")
def treadle_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose `treadle` runs this tree's treadle with this interpreter, for the CI
    clients that run `treadle` from PATH (gitlab-ci-local's shell jobs, Jenkins' sh)."""
    folder = tmp_path_factory.mktemp("bin")
    script = folder / "treadle"
    script.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="{ROOT / "src"}${{PYTHONPATH:+:$PYTHONPATH}}" '
        f'exec "{sys.executable}" -m treadle "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return folder


@pytest.fixture(scope="session")
def gitlab_ci_local() -> str:
    found = shutil.which("gitlab-ci-local")
    if found is None:
        unavailable("gitlab-ci-local is missing: run .ci/ci-tools")
    return found


@pytest.fixture(scope="session")
def groovy() -> tuple[str, dict[str, str]]:
    """Debian's groovy, and the environment its launcher needs (it looks for
    /usr/lib/jvm/default-java unless JAVA_HOME says otherwise)."""
    found, java = shutil.which("groovy"), shutil.which("java")
    if found is None or java is None:
        unavailable("groovy is missing: run .ci/ci-tools")
    env = {}
    if not os.environ.get("JAVA_HOME") and not Path("/usr/lib/jvm/default-java").exists():
        env["JAVA_HOME"] = str(Path(java).resolve().parents[1])
    return found, env
