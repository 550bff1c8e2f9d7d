"""The container image built from the Dockerfile: treadle as its entrypoint, for root (as
GitHub's Docker actions run it) and for any other uid (as Jenkins' docker agent runs it),
deploying on the local engine through its mounted socket."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dockerish import IMAGE

from treadle import __version__

from .running import docker_run

ROOT_USER: list[str] = []
# No passwd entry, no home: nothing may be written at run time, and the root filesystem is
# read-only to prove it.
ANY_USER = ["--user", "1234:1234"]
USERS = pytest.mark.parametrize("user", [ROOT_USER, ANY_USER], ids=["root", "uid-1234"])


@USERS
def test_the_entrypoint_is_treadle(treadle_image: str, user: list[str]) -> None:
    ran = docker_run(treadle_image, "--version", options=[*user, "--read-only"])
    assert ran.code == 0, ran
    assert ran.stdout == f"treadle {__version__}\n"


@USERS
def test_a_deploy_reaches_the_engine_through_the_mounted_socket(
    treadle_image: str, docker_socket: Path, region: str, user: list[str]
) -> None:
    # A uid other than root reaches the socket through the group that owns it.
    group = ["--group-add", str(os.stat(docker_socket).st_gid)] if user else []
    ran = docker_run(
        treadle_image,
        "deploy",
        "--cluster",
        "web-prod",
        "--image",
        IMAGE,
        "--region",
        region,
        "--timeout",
        "60s",
        options=[
            *user,
            *group,
            "--read-only",
            "-e",
            "HOME=/nonexistent",
            "-v",
            f"{docker_socket}:/var/run/docker.sock",
        ],
    )
    assert ran.code == 0, ran
    result = json.loads(ran.stdout)
    assert (result["status"], result["provider"]) == ("succeeded", "docker")
    assert (result["server_group"], result["image"]) == ("web-prod-v000", IMAGE)
    assert "web-prod-v000: 1/1 healthy" in ran.stderr
