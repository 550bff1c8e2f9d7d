"""The Marathon emulator's event stream (GET /v2/events): what it sends, in which shape,
when, and that it ends with the emulator."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator import MarathonEmulator, Request, Response
from test_emulator import FAST, FAST_FAILURES, http, wait_until

SSE = {"Accept": "text/event-stream"}
APP = {
    "id": "/web",
    "cmd": "sleep 1000",
    "instances": 2,
    "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}],
}


def parse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """(event type, data) of a text/event-stream; this emulator and events.txt put each
    field on one line."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in fields:
            events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


class Follower:
    """Reads an event stream on a thread of its own, as a client does."""

    def __init__(self, url: str, **params: Any) -> None:
        self.text = ""
        self.status: int | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url, params), daemon=True)
        self._thread.start()

    def _read(self, url: str, params: dict[str, Any]) -> None:
        try:
            with httpx.stream("GET", url, params=params, headers=SSE, timeout=30) as response:
                self.status = response.status_code
                for chunk in response.iter_text():
                    self.text += chunk
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    @property
    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return parse_events(self.text)

    def types(self) -> list[str]:
        return [name for name, _ in self.events]

    def attached(self) -> bool:
        return "event_stream_attached" in self.types()


@pytest.fixture
def emu() -> Iterator[MarathonEmulator]:
    with MarathonEmulator(**FAST, **FAST_FAILURES) as emulator:
        yield emulator


def follow(emu: MarathonEmulator, path: str = "/v2/events", **params: Any) -> Follower:
    follower = Follower(emu.url + path, **params)
    wait_until(follower.attached)
    return follower


def test_a_deployment_is_told_as_it_happens_without_any_request(emu: MarathonEmulator) -> None:
    events = follow(emu)
    with http(emu.url) as client:
        assert client.post("/v2/apps", json=APP).status_code == 201
    # No request after the POST: the emulator's clock sends the rest on time.
    wait_until(lambda: "deployment_success" in events.types())
    told = events.types()
    assert (
        told.index("deployment_info")
        < told.index("deployment_step_success")
        < told.index("deployment_success")
    )
    statuses = [
        (e["taskStatus"], e["taskId"]) for name, e in events.events if name == "status_update_event"
    ]
    tasks = {task for _, task in statuses}
    assert len(tasks) == 2
    for task in tasks:
        assert [s for s, t in statuses if t == task] == ["TASK_STAGING", "TASK_RUNNING"]
    healthy = [e for name, e in events.events if name == "health_status_changed_event"]
    assert {e["instanceId"] for e in healthy} == tasks and all(e["alive"] for e in healthy)
    success = next(e for name, e in events.events if name == "deployment_success")
    assert success["plan"]["steps"][-1]["actions"] == [
        {"action": "ScaleApplication", "app": "/web"}
    ]
    assert emu.deployments_finished_at()


def test_event_type_filters_and_the_dcos_prefix(emu: MarathonEmulator) -> None:
    events = follow(
        emu,
        "/service/marathon/v2/events",
        event_type=["event_stream_attached", "deployment_success"],
    )
    with http(emu.url) as client:
        client.post("/v2/apps", json=APP)
    wait_until(lambda: "deployment_success" in events.types())
    assert set(events.types()) == {"event_stream_attached", "deployment_success"}


def test_task_failures_and_cancelled_deployments_are_told(emu: MarathonEmulator) -> None:
    emu.failing_images.add("web:broken")
    events = follow(emu)
    broken = {
        "id": "/broken",
        "instances": 1,
        "container": {"type": "DOCKER", "docker": {"image": "web:broken"}},
    }
    with http(emu.url) as client:
        client.post("/v2/apps", json=broken)
        wait_until(lambda: any(e.get("taskStatus") == "TASK_FAILED" for _, e in events.events))
        # A forced change cancels the deployment that cannot finish.
        assert (
            client.put(
                "/v2/apps/broken", params={"force": "true"}, json={"instances": 0}
            ).status_code
            == 200
        )
        wait_until(lambda: "deployment_failed" in events.types())
    failed = next(e for _, e in events.events if e.get("taskStatus") == "TASK_FAILED")
    assert failed["message"] and failed["appId"] == "/broken"
    cancelled = next(e for name, e in events.events if name == "deployment_failed")
    assert cancelled["plan"]["steps"][0]["actions"][0]["app"] == "/broken"


def test_scaling_down_tells_of_the_killed_task(emu: MarathonEmulator) -> None:
    emu.add_app(APP)
    events = follow(emu)
    with http(emu.url) as client:
        assert client.put("/v2/apps/web", json={"instances": 1}).status_code == 200
    wait_until(lambda: "deployment_success" in events.types())
    killed = [e for name, e in events.events if name == "status_update_event"]
    assert [(e["taskStatus"], e["appId"]) for e in killed] == [("TASK_KILLED", "/web")]


def test_disabled_stream_forbidden_and_wrong_accept(emu: MarathonEmulator) -> None:
    with http(emu.url) as client:
        assert client.get("/v2/events").status_code == 405
        emu.events_enabled = False
        assert client.get("/v2/events", headers=SSE).status_code == 404
        emu.events_enabled = True
        emu.forbidden = True
        assert client.get("/v2/events", headers=SSE).status_code == 403


def test_faults_answer_a_stream_request_too(emu: MarathonEmulator) -> None:
    def leader_election(request: Request) -> Response | None:
        return Response(503, None) if request.path == "/v2/events" else None

    emu.faults.append(leader_election)
    with http(emu.url) as client:
        assert client.get("/v2/events", headers=SSE).status_code == 503


def test_stopping_the_emulator_ends_open_streams() -> None:
    emu = MarathonEmulator(**FAST)
    emu.start()
    events = follow(emu)
    emu.stop()
    assert events.ended.wait(5), "the stream outlived the emulator"


def test_events_have_the_fields_of_events_txt(emu: MarathonEmulator, shared_data: Path) -> None:
    real = parse_events((shared_data / "marathon/examples/events.txt").read_text())
    assert real, "events.txt holds no events"
    events = follow(emu)
    with http(emu.url) as client:
        client.post("/v2/apps", json=APP)
    wait_until(lambda: "deployment_success" in events.types())
    ours: dict[str, dict[str, Any]] = {}
    for name, event in events.events:
        ours.setdefault(name, event)
    for name, example in real:
        assert name == example["eventType"]
        event = ours[name]
        assert event["eventType"] == name
        assert set(event) == set(example), f"{name}: {sorted(set(event) ^ set(example))}"
        for key, value in example.items():
            assert type(event[key]) is type(value), f"{name}.{key}: {event[key]!r} vs {value!r}"
        time.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ")
