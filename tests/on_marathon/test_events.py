"""Waiting on Marathon's event stream: a wait checks again when Marathon says something
happened to its app, polls only as a safety net while the stream is live, and polls as
before when the stream is refused or keeps breaking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from emulator import MarathonEmulator, Request, Response, Token
from helpers import treadle

from treadle.providers.feed import StreamRefused
from treadle.providers.marathon.marathon_events import EVENT_TYPES, apps_named, server_sent_events

from .conftest import FAST

# A deployment that stays listed for 3 s: polling from 0.1 s up to 2 s apart checks on it
# 7 or more times; news of the app is far fewer checks.
SLOW = {**FAST, "deploy_seconds": 3.0}
DEPLOY = ["deploy", "--app", "web", "--image", "web:1", "--instances", "2"]
POLLED_AT_LEAST = 7


@pytest.fixture
def slow() -> Iterator[MarathonEmulator]:
    with MarathonEmulator(**SLOW) as emu:
        yield emu


def health_checks(emu: MarathonEmulator, app_id: str = "/web-v000") -> int:
    """GETs of the app with the embeds a wait asks for."""
    return sum(1 for r in emu.requests if r.path == f"/v2/apps{app_id}" and r.query.get("embed"))


def stream_requests(emu: MarathonEmulator) -> list[Request]:
    return [r for r in emu.requests if r.path == "/v2/events"]


def test_a_wait_checks_when_marathon_tells_of_its_app(slow: MarathonEmulator) -> None:
    outcome = treadle(*DEPLOY, "--marathon-url", slow.url)
    assert outcome.code == 0, outcome
    assert outcome.result["instances"] == 2
    (stream,) = stream_requests(slow)
    assert stream.query["event_type"] == list(EVENT_TYPES)
    assert stream.headers["accept"] == "text/event-stream"
    assert health_checks(slow) < POLLED_AT_LEAST - 2, "the wait polled instead of waiting for news"
    assert "polling instead" not in outcome.stderr


def test_without_the_stream_the_wait_polls(slow: MarathonEmulator) -> None:
    slow.events_enabled = False
    outcome = treadle(*DEPLOY, "--marathon-url", slow.url)
    assert outcome.code == 0, outcome
    assert len(stream_requests(slow)) == 1, "a 404 is not retried"
    assert health_checks(slow) >= POLLED_AT_LEAST
    assert (
        "Marathon's event stream is not available (404 Not Found): polling instead"
        in outcome.stderr
    )


def test_a_stream_forbidden_to_the_credentials_falls_back_to_polling(
    slow: MarathonEmulator,
) -> None:
    def forbidden(request: Request) -> Response | None:
        return (
            Response(403, {"message": "Not Authorized to perform this action!"})
            if request.path == "/v2/events"
            else None
        )

    slow.faults.append(forbidden)
    outcome = treadle(*DEPLOY, "--marathon-url", slow.url)
    assert outcome.code == 0, outcome
    assert health_checks(slow) >= POLLED_AT_LEAST
    assert "(403 Forbidden): polling instead" in outcome.stderr


def test_a_broken_stream_is_followed_again() -> None:
    refused = []

    def leader_election(request: Request) -> Response | None:
        if request.path == "/v2/events" and not refused:
            refused.append(request)
            return Response(503, None)
        return None

    # Long enough for polling to check 10 times; the stream is back within a second.
    with MarathonEmulator(**{**SLOW, "deploy_seconds": 5.0}) as emu:
        emu.faults.append(leader_election)
        outcome = treadle(*DEPLOY, "--marathon-url", emu.url)
        assert outcome.code == 0, outcome
        assert len(stream_requests(emu)) == 2
        assert health_checks(emu) < POLLED_AT_LEAST, (
            "the wait did not use the stream once it attached"
        )


def test_the_stream_goes_through_dcos_with_the_stages_credentials() -> None:
    with MarathonEmulator(auth=Token("s3cret-token"), **SLOW) as emu:
        outcome = treadle(
            *DEPLOY, "--dcos-url", emu.dcos_url, env={"DCOS_ACS_TOKEN": "s3cret-token"}
        )
        assert outcome.code == 0, outcome
        (stream,) = stream_requests(emu)
        assert stream.headers["authorization"] == "token=s3cret-token"
        assert health_checks(emu) < POLLED_AT_LEAST - 2


# -- reading the stream ------------------------------------------------------------------


def event_stream(
    text: str, content_type: str = "text/event-stream;charset=utf-8"
) -> httpx.Response:
    return httpx.Response(200, headers={"Content-Type": content_type}, content=text.encode())


def read(response: httpx.Response) -> list[tuple[str, str]]:
    return [(event.event, event.data) for event in server_sent_events(response)]


def test_server_sent_events_of_a_real_stream(shared_data: Path) -> None:
    text = (shared_data / "marathon/examples/events.txt").read_text()
    events = read(event_stream(text))
    assert [name for name, _ in events] == [
        "event_stream_attached",
        "status_update_event",
        "status_update_event",
    ]
    assert '"taskStatus":"TASK_FAILED"' in events[1][1]


def test_server_sent_events_skip_heartbeats_and_comments() -> None:
    lines = [
        "",
        "",
        ": keep-alive",
        "event: deployment_success",
        'data: {"id": "1",',
        'data: "x": 2}',
        "",
        "",
        "event: no_data",
        "",
        "data: plain",
        "",
    ]
    assert read(event_stream("".join(f"{line}\r\n" for line in lines))) == [
        ("deployment_success", '{"id": "1",\n"x": 2}'),
        ("message", "plain"),
    ]


def test_server_sent_events_split_lines_only_at_line_ends() -> None:
    # Jackson leaves U+2028 and U+2029 unescaped in a JSON string, as JSON allows.
    message = '{"message":"Failed\u2028to\u2029start"}'
    assert read(event_stream(f"event: status_update_event\ndata: {message}\n\n")) == [
        ("status_update_event", message)
    ]


def test_an_answer_that_is_not_an_event_stream_is_refused() -> None:
    with pytest.raises(StreamRefused, match="text/html"):
        read(event_stream("<html>Sign in</html>", content_type="text/html"))


@pytest.mark.parametrize(
    ("event", "apps"),
    [
        (
            {
                "eventType": "status_update_event",
                "appId": "/prod/web-v001",
                "taskStatus": "TASK_RUNNING",
            },
            {"/prod/web-v001"},
        ),
        (
            {"eventType": "health_status_changed_event", "appId": "/web-v000", "alive": True},
            {"/web-v000"},
        ),
        # Marathon 1.4 and later: each step lists its actions.
        (
            {
                "eventType": "deployment_success",
                "id": "d1",
                "plan": {
                    "id": "d1",
                    "steps": [
                        {"actions": [{"action": "StartApplication", "app": "/a"}]},
                        {
                            "actions": [
                                {"action": "ScaleApplication", "app": "/a"},
                                {"action": "ScaleApplication", "app": "/b"},
                            ]
                        },
                    ],
                },
            },
            {"/a", "/b"},
        ),
        # Before 1.4 a step is one action; deployment_info also names its current step.
        (
            {
                "eventType": "deployment_info",
                "plan": {"id": "d1", "steps": [{"action": "ScaleApplication", "app": "/a"}]},
                "currentStep": {"actions": [{"type": "ScaleApplication", "app": "/c"}]},
            },
            {"/a", "/c"},
        ),
        # Before 1.4 deployment_success carries only the deployment's id: it could be anyone's.
        ({"eventType": "deployment_success", "id": "d1"}, None),
    ],
)
def test_apps_named_by_an_event(event: dict, apps: set[str] | None) -> None:
    assert apps_named(event) == apps


def test_no_events_polls_without_asking_for_the_stream(slow: MarathonEmulator) -> None:
    outcome = treadle(*DEPLOY, "--marathon-url", slow.url, env={"TREADLE_NO_EVENTS": "true"})
    assert outcome.code == 0, outcome
    assert stream_requests(slow) == []
    assert health_checks(slow) >= POLLED_AT_LEAST
    assert "not available" not in outcome.stderr
