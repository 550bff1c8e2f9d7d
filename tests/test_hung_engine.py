"""A Docker engine that takes connections and never answers: a stage ends at --timeout
(or --request-timeout, whichever comes first) with one line and exit 4, not at the Docker
SDK's own 60 s."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import treadle


@pytest.fixture
def hung_engine(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts every connection and answers nothing."""
    path = tmp_path / "docker.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"unix://{path}"
    stop.set()
    thread.join(2)
    for connection in held:
        connection.close()
    server.close()


@pytest.mark.parametrize("provider", ["docker", "swarm"])
@pytest.mark.parametrize(
    ("flags", "bound"), [(["--timeout", "3s"], 3), (["--request-timeout", "2s"], 2)]
)
def test_a_hung_engine_ends_the_stage_in_time(
    hung_engine: str, provider: str, flags: list[str], bound: float
) -> None:
    started = time.monotonic()
    outcome = treadle(
        "deploy",
        "--provider",
        provider,
        "--app",
        "web",
        "--image",
        "web:1",
        *flags,
        env={"DOCKER_HOST": hung_engine},
    )
    took = time.monotonic() - started
    assert outcome.code == 4, outcome
    assert took < bound + 1.5, f"took {took:.1f}s"
    assert len(outcome.error_lines) == 1 and "Traceback" not in outcome.stderr
