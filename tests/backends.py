"""The clusters tests/scenarios.py races real treadle processes on: the Marathon emulator
(with a token to keep out of every output) and a real Docker engine or Swarm (a region of
its own, removed afterwards; one locally tagged image per job, so that every server
group says which job made it)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
from emulator import MarathonEmulator, Request, Response, Token

from treadle.console import Console
from treadle.providers.base import Provider
from treadle.providers.engine.spec import LABEL_REGION
from treadle.providers.registry import open_provider, settings_for
from treadle.waiting import Deadline

if TYPE_CHECKING:
    from scenarios import World

TOKEN = "tok-safety-3f9a7c2e51d8"
# Slow enough to kill a deploy in the middle of any step, fast enough for CI.
TIMINGS = {"deploy_seconds": 0.3, "task_start_seconds": 0.15, "health_seconds": 0.1}
HEALTH_CHECKED = {
    "container": {
        "type": "DOCKER",
        "docker": {"network": "BRIDGE", "portMappings": [{"containerPort": 80}]},
    },
    "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0}],
}
# A Compose service serving the test image's httpd, health-checked every 0.5 s.
SERVED = {
    "ports": ["80"],
    "healthcheck": {
        "test": ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"],
        "interval": "500ms",
        "retries": 3,
    },
}
ENGINE_IMAGES = ("treadle-test/busybox:1", "treadle-test/busybox:2")
UNHEALTHY_IMAGE = "treadle-test/unhealthy:1"


def quiet_provider(name: str, given: dict[str, Any]) -> Provider:
    return open_provider(
        name,
        settings_for(name, given),
        deadline=Deadline(3600),
        console=Console(quiet=True),
        request_timeout=10,
    )


class MarathonBackend:
    name = "marathon"
    spec = HEALTH_CHECKED
    poll = 0.05
    timeout = "60s"
    secrets = (TOKEN,)

    def __init__(self, emulator: MarathonEmulator, region: str = "/") -> None:
        self.emulator = emulator
        self.region = region
        self.cli = ["--marathon-url", emulator.url]
        self.env = {"DCOS_ACS_TOKEN": TOKEN}

    def open(self) -> Provider:
        return quiet_provider("marathon", {"marathon_url": self.emulator.url, "token": TOKEN})

    def image(self, job: int) -> str:
        return f"registry.example/web:{job}"

    def make_unhealthy(self, image: str) -> None:
        """Instances of `image` started from now on never pass their health checks."""
        self.emulator.unhealthy_images.add(image)

    @contextlib.contextmanager
    def held(self, method: str, path: str) -> Iterator[None]:
        """While inside, requests `method path` are held, then answered 503 and never
        carried out: a sender killed meanwhile dies just before its change."""
        release = threading.Event()

        def hold(request: Request) -> Response | None:
            if request.method != method or request.path != path:
                return None
            release.wait(60)
            return Response(503, {"message": "held by the test"})

        self.emulator.faults.append(hold)
        try:
            yield
        finally:
            release.set()
            self.emulator.faults.remove(hold)

    def seed(self, world: World) -> None:
        from scenarios import CLUSTER, SIZE

        self.emulator.add_app(
            {
                "id": f"{self.region.rstrip('/')}/{CLUSTER}-v000",
                "instances": SIZE,
                "labels": {"treadle.created-at": "2026-01-01T00:00:00.000Z"},
                **HEALTH_CHECKED,
                "container": {
                    **HEALTH_CHECKED["container"],
                    "docker": {**HEALTH_CHECKED["container"]["docker"], "image": self.image(0)},
                },
            }
        )

    def lease_records(self) -> list[str]:
        answer = httpx.get(
            f"{self.emulator.url}/v2/apps", headers={"Authorization": f"token={TOKEN}"}
        )
        answer.raise_for_status()
        return [a["id"] for a in answer.json()["apps"] if ".lease" in a["id"].rsplit("/", 1)[-1]]


@contextlib.contextmanager
def marathon(**timings: float) -> Iterator[MarathonBackend]:
    with MarathonEmulator(auth=Token(TOKEN), **{**TIMINGS, **timings}) as emulator:
        yield MarathonBackend(emulator)


class EngineImages:
    """Tags of the two test images, one per job number, made on first use and removed at
    the end (a tag costs nothing on the engine: it names an image it has)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.repository = f"treadle-test/safety-{uuid.uuid4().hex[:6]}"
        self.made: set[str] = set()

    def __call__(self, job: int) -> str:
        name = f"{self.repository}:{job}"
        if name not in self.made:
            self.api.tag(ENGINE_IMAGES[job % 2], self.repository, str(job))
            self.made.add(name)
        return name

    def remove(self) -> None:
        for name in self.made:
            with contextlib.suppress(Exception):
                self.api.remove_image(name)
        self.made.clear()


class EngineBackend:
    spec = SERVED
    poll = 0.1
    timeout = "120s"
    secrets: tuple[str, ...] = ()

    def __init__(self, name: str, api: Any, images: EngineImages) -> None:
        self.name = name  # docker | swarm
        self.api = api
        self.images = images
        self.region = "s" + uuid.uuid4().hex[:8]
        self.cli = ["--provider", name]
        host = os.environ.get("DOCKER_HOST")
        self.env = {"DOCKER_HOST": host} if host else {}

    def open(self) -> Provider:
        return quiet_provider(self.name, {})

    def image(self, job: int) -> str:
        return self.images(job)

    def seed(self, world: World) -> None:
        from scenarios import CLUSTER, FOREIGN, PATHS, SIZE

        env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
        env["PYTHONPATH"] = os.pathsep.join(map(str, PATHS))
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "treadle",
                "deploy",
                "--cluster",
                CLUSTER,
                "--region",
                self.region,
                "--image",
                self.image(0),
                "--instances",
                str(SIZE),
                "--spec",
                str(world.spec_file),
                "--timeout",
                self.timeout,
                "--output",
                str(world.folder / "seed.json"),
                *self.cli,
            ],
            env={**env, **self.env},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, f"seeding {self.region} failed:\n{done.stderr}"

    def lease_records(self) -> list[str]:
        filters = {"label": ["treadle.lease", f"{LABEL_REGION}={self.region}"]}
        names = [c["Names"][0].lstrip("/") for c in self.api.containers(all=True, filters=filters)]
        if self.name == "swarm":
            names += [s["Spec"]["Name"] for s in self.api.services(filters=filters)]
        return names

    def remove(self) -> None:
        from dockerish import remove_region

        remove_region(self.api, self.region)


@contextlib.contextmanager
def engine(name: str, api: Any, images: EngineImages) -> Iterator[EngineBackend]:
    backend = EngineBackend(name, api, images)
    try:
        yield backend
    finally:
        backend.remove()
