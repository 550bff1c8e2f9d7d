"""run-job on the Mesos master's event stream: the run's state is read when the master
says its task was launched or ended, the log at its own pace, and everything is polled
as before when the stream is refused or keeps breaking."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from emulator import MetronomeEmulator, Request, Response, Token
from helpers import Outcome, treadle

from treadle.providers.marathon.mesos_events import (
    EVENT_LIMIT,
    NOT_RECORDIO,
    RecordIO,
    task_news,
)

from .conftest import FAST_JOBS

# A run that lasts 3 s: polling from 0.1 s up to 2 s apart reads its state 8 or more
# times; news of its task is 3 or 4 reads (the stream attached, the task launched, the
# task ended, and the history once the run is over).
SECONDS = 3.0
POLLED_AT_LEAST = 8
JOB = ["run-job", "--job-id", "ci.news", "--cmd", "./work"]


@pytest.fixture
def cluster() -> Iterator[MetronomeEmulator]:
    with MetronomeEmulator(**FAST_JOBS) as emu:
        emu.script("ci.news", stdout="working\nTREADLE_OUTPUT done=yes\n", seconds=SECONDS)
        yield emu


def run_reads(emu: MetronomeEmulator) -> int:
    """Reads of the run's state, and of the job's history once it is over."""
    return sum(
        1
        for r in emu.requests
        if r.method == "GET"
        and (r.path.startswith("/v1/jobs/ci.news/runs/") or r.query.get("embed") == ["history"])
    )


def subscriptions(emu: MetronomeEmulator) -> list[Request]:
    return [r for r in emu.requests if r.path == "/mesos/api/v1"]


def run(emu: MetronomeEmulator, **kw: object) -> Outcome:
    outcome = treadle(*JOB, "--dcos-url", emu.dcos_url, **kw)  # type: ignore[arg-type]
    assert outcome.code == 0, outcome
    assert outcome.result["outputs"] == {"done": "yes"}
    return outcome


def test_the_run_is_read_when_the_master_tells_of_its_task(cluster: MetronomeEmulator) -> None:
    outcome = run(cluster)
    (subscribe,) = subscriptions(cluster)
    assert subscribe.method == "POST" and subscribe.body == {"type": "SUBSCRIBE"}
    assert subscribe.headers["accept"] == "application/json"
    assert run_reads(cluster) <= 5, "the wait polled instead of waiting for news"
    assert "polling instead" not in outcome.stderr
    # The log still arrives, and the run's states in order.
    states = [line.split(": ")[-1] for line in outcome.stderr.splitlines() if ": " in line]
    assert states.index("ACTIVE") < states.index("SUCCESS")


def test_without_the_stream_the_run_is_polled(cluster: MetronomeEmulator) -> None:
    cluster.events_enabled = False
    outcome = run(cluster)
    assert len(subscriptions(cluster)) == 1, "a 404 is not retried"
    assert run_reads(cluster) >= POLLED_AT_LEAST
    assert (
        "the Mesos master's event stream is not available (404 Not Found): polling instead"
        in outcome.stderr
    )


def test_no_events_polls_without_subscribing(cluster: MetronomeEmulator) -> None:
    outcome = run(cluster, env={"TREADLE_NO_EVENTS": "1"})
    assert subscriptions(cluster) == []
    assert run_reads(cluster) >= POLLED_AT_LEAST
    assert "not available" not in outcome.stderr


def test_a_stream_forbidden_to_the_credentials_falls_back_to_polling() -> None:
    def forbidden(request: Request) -> Response | None:
        if request.path == "/mesos/api/v1":
            return Response(403, "Forbidden", content_type="text/plain")
        return None

    with MetronomeEmulator(**FAST_JOBS, auth=Token("s3cret"), admin_router=True) as emu:
        emu.script("ci.news", stdout="TREADLE_OUTPUT done=yes\n", seconds=SECONDS)
        emu.faults.append(forbidden)
        outcome = run(emu, env={"DCOS_ACS_TOKEN": "s3cret"})
        assert run_reads(emu) >= POLLED_AT_LEAST
        assert "(403 Forbidden): polling instead" in outcome.stderr


def test_the_stream_goes_through_dcos_with_the_stages_credentials() -> None:
    with MetronomeEmulator(**FAST_JOBS, auth=Token("s3cret"), admin_router=True) as emu:
        emu.script("ci.news", stdout="TREADLE_OUTPUT done=yes\n", seconds=SECONDS)
        run(emu, env={"DCOS_ACS_TOKEN": "s3cret"})
        (subscribe,) = subscriptions(emu)
        assert subscribe.headers["authorization"] == "token=s3cret"
        assert run_reads(emu) <= 5


def test_a_huge_snapshot_is_skipped_and_news_still_comes() -> None:
    """On a big cluster the first event holds every task; it is counted past unread."""
    with MetronomeEmulator(**FAST_JOBS, snapshot_tasks=20_000) as emu:
        emu.script("ci.news", stdout="TREADLE_OUTPUT done=yes\n", seconds=SECONDS)
        run(emu)
        assert run_reads(emu) <= 5


def test_a_broken_stream_is_followed_again() -> None:
    refused: list[Request] = []

    def leader_election(request: Request) -> Response | None:
        if request.path == "/mesos/api/v1" and not refused:
            refused.append(request)
            return Response(503, "no leading master", content_type="text/plain")
        return None

    with MetronomeEmulator(**FAST_JOBS) as emu:
        emu.script("ci.news", stdout="TREADLE_OUTPUT done=yes\n", seconds=4.0)
        emu.faults.append(leader_election)
        run(emu)
        assert len(subscriptions(emu)) == 2
        assert run_reads(emu) < POLLED_AT_LEAST, "the wait did not use the stream once back"


# -- reading the stream ------------------------------------------------------------------


def recordio(*events: object) -> bytes:
    return b"".join(b"%d\n%s" % (len(data), data) for data in map(encode, events))


def encode(event: object) -> bytes:
    return event if isinstance(event, bytes) else json.dumps(event).encode()


def test_records_come_whole_however_the_stream_is_cut() -> None:
    stream = recordio({"type": "SUBSCRIBED"}, {"type": "HEARTBEAT"}, b"x" * 300)
    for size in (1, 2, 7, 64, len(stream)):
        chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
        assert list(RecordIO(chunks).records(EVENT_LIMIT)) == [
            b'{"type": "SUBSCRIBED"}',
            b'{"type": "HEARTBEAT"}',
            b"x" * 300,
        ]


def test_a_record_over_the_limit_is_skipped_unread() -> None:
    stream = recordio(b"s" * 5000, {"type": "HEARTBEAT"})
    chunks = [stream[i : i + 100] for i in range(0, len(stream), 100)]
    assert list(RecordIO(chunks).records(limit=1000)) == [None, b'{"type": "HEARTBEAT"}']


def test_a_stream_cut_inside_a_record_just_ends() -> None:
    stream = recordio({"type": "HEARTBEAT"}, {"type": "TASK_ADDED"})
    assert list(RecordIO([stream[:-3]]).records(EVENT_LIMIT)) == [b'{"type": "HEARTBEAT"}']
    assert list(RecordIO([stream[:3]]).records(EVENT_LIMIT)) == []


@pytest.mark.parametrize(
    "answer", [b"<html><body>Bad Gateway</body></html>", b'{"type": "SUBSCRIBED"}\n', b"-5\nx"]
)
def test_an_answer_that_is_not_recordio_is_refused(answer: bytes) -> None:
    with pytest.raises(ValueError, match=NOT_RECORDIO):
        list(RecordIO([answer]).records(EVENT_LIMIT))


TASK = "ci_news_20261122093000AbCdE.4b1c7c2e-5f0e-4b8a-9d7e-1c2b3a4d5e6f"


def updated(state: str) -> dict[str, object]:
    return {
        "type": "TASK_UPDATED",
        "task_updated": {
            "framework_id": {"value": "f-0001"},
            "status": {"task_id": {"value": TASK}, "state": state, "source": "SOURCE_EXECUTOR"},
            "state": state,
        },
    }


def test_a_launch_and_an_end_are_news_the_steps_between_are_not() -> None:
    added = {
        "type": "TASK_ADDED",
        "task_added": {"task": {"task_id": {"value": TASK}, "state": "TASK_STAGING"}},
    }
    assert task_news(added) == (TASK, "TASK_STAGING")
    for state in ("TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR"):
        assert task_news(updated(state)) == (TASK, state)
    for state in ("TASK_STARTING", "TASK_RUNNING", "TASK_KILLING"):
        assert task_news(updated(state)) is None
    assert task_news({"type": "HEARTBEAT"}) is None
    assert task_news({"type": "AGENT_ADDED", "agent_added": {}}) is None
