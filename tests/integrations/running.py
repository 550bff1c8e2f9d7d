"""Running treadle's image, and the files these tests check."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

# Built from the Dockerfile by .ci/build-image (TREADLE_IMAGE_UNDER_TEST names another
# build of this tree, where several trees share one engine).
IMAGE_UNDER_TEST = os.environ.get("TREADLE_IMAGE_UNDER_TEST", "treadle:ci")
ROOT = Path(__file__).resolve().parents[2]
# One container run: the image takes a few seconds to start on the vfs storage driver.
RUN_SECONDS = 120


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.code}\nstderr:\n{self.stderr}\nstdout:\n{self.stdout}"


def docker_run(
    image: str,
    *args: str,
    options: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Ran:
    """`docker run --rm` that leaves no container behind, even when it times out. The
    variables in `env` reach the container as `-e NAME` (the value from this process's
    environment, as GitHub's runner passes them), never on the command line."""
    name = f"treadle-test-{uuid.uuid4().hex[:12]}"
    passed = [flag for key in (env or {}) for flag in ("-e", key)]
    command = ["docker", "run", "--rm", "--name", name, *passed, *(options or []), image, *args]
    try:
        done = subprocess.run(
            command,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            timeout=RUN_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True)
    return Ran(done.returncode, done.stdout, done.stderr)
