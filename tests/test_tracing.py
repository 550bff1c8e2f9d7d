"""Traces: a stage sends its spans over OTLP/HTTP to a receiver started here (decoded with
opentelemetry-proto), as a child of the CI's span when TRACEPARENT names one: the stage,
each request with its path template and status, each wait with how it woke. No secret is
in any of it, a collector that does not answer holds the stage at most about a second,
and a missing SDK only costs a warning."""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest
from dockerish import IMAGE, engine, region, treadle_on_engine  # noqa: F401 (the engine fixtures)
from emulator import MarathonEmulator, MetronomeEmulator, Request, Response, Token
from helpers import treadle
from otlp import CLIENT, STATUS_ERROR, Receiver, Span

from treadle import __version__

FAST = {"deploy_seconds": 0.05, "task_start_seconds": 0.05, "health_seconds": 0.05}
SECRET = "tok-7d1e-never-leaves"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CI_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CI_SPAN}-01"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def traced(receiver: Receiver, **more: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "TRACEPARENT": TRACEPARENT, **more}


def the(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def ancestors(span: Span, spans: list[Span]) -> list[str]:
    """The names of a span's ancestors, nearest first, up to the CI's span."""
    by_id = {s.span_id: s for s in spans}
    names, parent = [], span.parent_id
    while parent in by_id:
        names.append(by_id[parent].name)
        parent = by_id[parent].parent_id
    assert parent == CI_SPAN, f"{span.name} is not under the CI's span"
    return names


def everything(spans: list[Span]) -> str:
    """All a collector was told, as text: names, attributes, statuses, resources."""
    return repr([(s.name, s.attributes, s.status_message, s.resource) for s in spans])


def test_a_deploy_on_marathon_is_one_trace_under_the_ci_span(receiver: Receiver) -> None:
    with MarathonEmulator(**FAST, auth=Token(SECRET)) as emu:
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--stack",
            "prod",
            # A secret where an attribute would carry it: the image.
            "--image",
            f"registry.example/web:{SECRET}",
            "--instances",
            "2",
            "--marathon-url",
            emu.url,
            "--token",
            SECRET,
            env=traced(receiver),
        )
    assert outcome.code == 0, outcome
    spans = receiver.spans()
    assert receiver.paths and set(receiver.paths) == {"/v1/traces"}
    assert {s.trace_id for s in spans} == {TRACE_ID}, "one trace, the CI's"

    stage = the(spans, "treadle deploy")
    assert stage.parent_id == CI_SPAN
    assert stage.attributes == {
        "treadle.stage": "deploy",
        "treadle.provider": "marathon",
        "treadle.status": "succeeded",
        "treadle.exit_code": 0,
        "treadle.dry_run": False,
        "treadle.cluster": "web-prod",
        "treadle.region": "/",
        "treadle.server_group": "web-prod-v000",
        "treadle.image": "registry.example/web:***",
        "treadle.strategy": "none",
    }
    assert stage.resource["service.name"] == "treadle"
    assert stage.resource["service.version"] == __version__

    requests = [s for s in spans if s.kind == CLIENT]
    names = {s.name for s in requests}
    assert {"POST /v2/apps", "GET /v2/apps/{id}", "GET /v2/groups"} <= names, names
    for request in requests:
        assert request.attributes["http.request.method"] == request.name.split()[0]
        assert request.attributes["url.template"] == request.name.split()[1]
        assert request.attributes["server.address"] == "127.0.0.1"
        assert isinstance(request.attributes["http.response.status_code"], int)
        assert "web-prod-v000" not in request.name, "ids are placeholders in span names"
    # The lease's record first (within the wait for it), then the server group.
    lease, created = sorted((s for s in spans if s.name == "POST /v2/apps"), key=lambda s: s.start)
    assert ancestors(lease, spans) == ["wait lease", "treadle deploy"]
    assert ancestors(created, spans) == ["treadle deploy"]
    assert created.attributes["http.response.status_code"] == 201

    wait = the(spans, "wait healthy")
    assert wait.attributes["treadle.wait.for"] == "web-prod-v000"
    assert wait.attributes["treadle.wait.woke_by"] in ("event", "poll", "none")
    assert wait.attributes["treadle.wait.looks"] >= 1
    assert wait.attributes["treadle.wait.state"].startswith("2/2")
    looks = [s for s in requests if s.parent_id == wait.span_id]
    assert looks and {s.name for s in looks} == {"GET /v2/apps/{id}"}
    assert len(looks) == wait.attributes["treadle.wait.looks"]
    assert ancestors(the(spans, "wait lease"), spans) == ["treadle deploy"]
    # The event stream the wait followed, opened in a thread of its own.
    assert ancestors(the(spans, "GET /v2/events"), spans) == ["treadle deploy"]

    assert SECRET not in everything(spans)
    assert all(start_ok(s, stage) for s in spans)


def start_ok(span: Span, stage: Span) -> bool:
    """Within the stage's span."""
    return stage.start <= span.start and span.end <= stage.end


def test_concurrent_regions_and_retries_stay_in_the_stages_trace(receiver: Receiver) -> None:
    with MarathonEmulator(**FAST) as emu:
        answered: list[str] = []

        def gateway_error_once(request: Request) -> Response | None:
            # One 503 for the first look at the group: the retry is a span of its own.
            if request.method == "GET" and request.path == "/v2/groups/a" and not answered:
                answered.append(request.path)
                return Response(503, {"message": "leader election"})
            return None

        emu.faults.append(gateway_error_once)
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--image",
            "web:1",
            "--region",
            "/a",
            "--region",
            "/b",
            "--marathon-url",
            emu.url,
            env=traced(receiver),
        )
    assert outcome.code == 0, outcome
    spans = receiver.spans()
    waits = [s for s in spans if s.name == "wait healthy"]
    assert sorted(s.attributes["treadle.wait.for"] for s in waits) == ["web-v000", "web-v000"]
    for wait in waits:
        assert ancestors(wait, spans)[-1] == "treadle deploy"
    tries = sorted(
        (
            s
            for s in spans
            if s.name == "GET /v2/groups/{id}" and s.attributes["url.path"] == "/v2/groups/a"
        ),
        key=lambda s: s.start,
    )
    assert [s.attributes["http.response.status_code"] for s in tries[:2]] == [503, 200]
    assert tries[0].status == STATUS_ERROR
    assert "http.request.resend_count" not in tries[0].attributes
    assert tries[1].attributes["http.request.resend_count"] == 1


def test_a_failed_run_job_on_metronome_ends_its_span_in_error(receiver: Receiver) -> None:
    with MetronomeEmulator(step_seconds=0.02, run_seconds=0.1) as emu:
        emu.script("ci.migrate", stdout="migrating\n", stderr="boom\n", exit_code=3)
        outcome = treadle(
            "run-job",
            "--job-id",
            "ci.migrate",
            "--cmd",
            "./migrate.sh",
            "--dcos-url",
            emu.dcos_url,
            env={"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": receiver.url + "/v1/traces"},
        )
    assert outcome.code == 1, outcome
    spans = receiver.spans()
    stage = the(spans, "treadle run-job")
    assert stage.parent_id == "", "no TRACEPARENT: a trace of its own"
    assert stage.status == STATUS_ERROR and "failed with exit code 3" in stage.status_message
    assert stage.attributes["treadle.exit_code"] == 1
    assert stage.attributes["treadle.job.exit_code"] == 3
    assert stage.attributes["treadle.job_status"] == "FAILED"
    assert stage.attributes["error.type"] == "StageFailed"
    run = the(spans, "wait job run")
    assert run.attributes["treadle.wait.state"] == "FAILED"
    names = {s.name for s in spans}
    metronome = "/service/metronome/v1/jobs/{id}"
    assert {f"POST {metronome}/runs", f"GET {metronome}/runs/{{run}}"} <= names, names
    assert "GET /agent/{id}/files/read" in names


@pytest.mark.docker
def test_a_deploy_on_docker_is_one_trace_under_the_ci_span(
    receiver: Receiver,
    engine: Any,  # noqa: F811 (a fixture)
    region: str,  # noqa: F811 (a fixture)
) -> None:
    outcome = treadle_on_engine(
        "deploy",
        "--cluster",
        "web-prod",
        "--image",
        IMAGE,
        "--region",
        region,
        "--instances",
        "2",
        env=traced(receiver),
    )
    assert outcome.code == 0, outcome
    spans = receiver.spans()
    assert {s.trace_id for s in spans} == {TRACE_ID}
    stage = the(spans, "treadle deploy")
    assert stage.parent_id == CI_SPAN
    assert stage.attributes["treadle.provider"] == "docker"
    assert stage.attributes["treadle.region"] == region
    assert stage.attributes["treadle.server_group"] == "web-prod-v000"
    assert stage.attributes["treadle.image"] == IMAGE
    assert stage.attributes["treadle.status"] == "succeeded"
    requests = [s for s in spans if s.kind == CLIENT]
    names = {s.name for s in requests}
    version = re.compile(r"/v\d+\.\d+")
    assert any(version.search(n) and n.endswith("/containers/create") for n in names), names
    assert any(n.endswith("/containers/{id}/start") for n in names), names
    for name in names:
        assert not re.search(r"[0-9a-f]{12}", name), f"an id in a span's name: {name}"
    wait = the(spans, "wait healthy")
    assert wait.attributes["treadle.wait.for"] == "web-prod-v000"
    assert any(s.parent_id == wait.span_id for s in requests), "its looks are its children"
    for span in spans:
        ancestors(span, spans)


def test_tracing_off_loads_no_opentelemetry(receiver: Receiver) -> None:
    with MarathonEmulator(**FAST) as emu:
        for name in [m for m in sys.modules if m.startswith("opentelemetry.sdk")]:
            del sys.modules[name]
        outcome = treadle("deploy", "--app", "web", "--image", "web:1", "--marathon-url", emu.url)
    assert outcome.code == 0, outcome
    assert not [m for m in sys.modules if m.startswith("opentelemetry.sdk")]
    assert receiver.requests == []


def test_without_the_sdk_the_stage_runs_untraced_with_one_warning(receiver: Receiver) -> None:
    with (
        MarathonEmulator(**FAST) as emu,
        mock.patch.dict(sys.modules, {"opentelemetry.sdk.trace": None}),
    ):
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--image",
            "web:1",
            "--marathon-url",
            emu.url,
            env=traced(receiver),
        )
    assert outcome.code == 0, outcome
    warnings = [line for line in outcome.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: tracing is off: OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry "
        "SDK is missing (opentelemetry.sdk.trace): pip install 'treadle[otel]'"
    ]
    assert receiver.requests == []


@pytest.mark.parametrize("variable", ["OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none"])
def test_the_standard_variables_switch_it_off(receiver: Receiver, variable: str) -> None:
    key, _, value = variable.partition("=")
    with MarathonEmulator(**FAST) as emu:
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--image",
            "web:1",
            "--marathon-url",
            emu.url,
            env=traced(receiver, **{key: value}),
        )
    assert outcome.code == 0, outcome
    assert receiver.requests == []


def test_a_collector_that_does_not_answer_holds_the_stage_about_a_second() -> None:
    with Receiver(hang=True) as stuck, MarathonEmulator(**FAST) as emu:
        args = ("deploy", "--app", "web", "--image", "web:1", "--marathon-url", emu.url)
        started = time.monotonic()
        untraced = treadle(*args, "--instances", "1")
        alone = time.monotonic() - started
        started = time.monotonic()
        outcome = treadle(*args, "--instances", "1", env=traced(stuck))
        took = time.monotonic() - started
    assert (untraced.code, outcome.code) == (0, 0), outcome
    assert stuck.paths == ["/v1/traces"]
    assert took < alone + 1.5, f"{took:.2f}s traced against {alone:.2f}s"
    assert (
        f"warning: the trace was not sent to {stuck.url} within 1s: the collector did not "
        "answer in time"
    ) in outcome.stderr.splitlines()


def test_a_collector_that_is_not_there_is_one_warning_and_no_failure() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    with MarathonEmulator(**FAST) as emu:
        started = time.monotonic()
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--image",
            "web:1",
            "--marathon-url",
            emu.url,
            env={"OTEL_EXPORTER_OTLP_ENDPOINT": closed},
        )
        took = time.monotonic() - started
    assert outcome.code == 0, outcome
    warnings = [line for line in outcome.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"warning: the trace was not sent to {closed}"
    )
    assert took < 5


def test_the_otlp_headers_reach_the_collector_and_are_masked(receiver: Receiver) -> None:
    key = "k3y-4b9e-for-the-backend"
    with MarathonEmulator(**FAST) as emu:
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--image",
            f"web:{key}",
            "--marathon-url",
            emu.url,
            env={
                **traced(receiver),
                "OTEL_EXPORTER_OTLP_HEADERS": f"x-api-key={key},x-env=prod",
                "GITHUB_ACTIONS": "true",
            },
        )
    assert outcome.code == 0, outcome
    assert receiver.headers and all(h["x-api-key"] == key for h in receiver.headers)
    lines = outcome.stderr.splitlines()
    assert f"::add-mask::{key}" in lines, "GitHub is told to hide it"
    assert key not in "\n".join(line for line in lines if not line.startswith("::add-mask::"))
    assert key not in everything(receiver.spans())
    assert "::add-mask::prod" not in lines, "a plain value stays plain"


def test_an_api_key_in_the_endpoint_or_a_malformed_header_is_never_printed() -> None:
    """The SDK's errors quote the endpoint's query and a header it cannot parse."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    key = "QuerySecretKey123"
    header = "Bearer HdrSecretColon12345"
    with MarathonEmulator(**FAST) as emu:
        args = ("deploy", "--app", "web", "--image", "web:1", "--marathon-url", emu.url)
        in_query = treadle(*args, env={"OTEL_EXPORTER_OTLP_ENDPOINT": f"{closed}/?api_key={key}"})
        malformed = treadle(
            *args,
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": closed,
                "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization: {header}",
            },
        )
    assert in_query.code == 0 and malformed.code == 0, (in_query, malformed)
    assert "warning: the trace was not sent" in in_query.stderr
    assert key not in in_query.stderr + in_query.stdout
    assert "warning: the trace was not sent" in malformed.stderr
    assert "HdrSecretColon12345" not in malformed.stderr + malformed.stdout


def test_grpc_is_not_spoken_and_says_so(receiver: Receiver) -> None:
    with MarathonEmulator(**FAST) as emu:
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--image",
            "web:1",
            "--marathon-url",
            emu.url,
            env=traced(receiver, OTEL_EXPORTER_OTLP_PROTOCOL="grpc"),
        )
    assert outcome.code == 0, outcome
    assert [line for line in outcome.stderr.splitlines() if line.startswith("warning:")] == [
        "warning: tracing is off: OTEL_EXPORTER_OTLP_PROTOCOL=grpc asks for what treadle does "
        "not send; it sends OTLP over HTTP (http/protobuf)"
    ]
    assert receiver.requests == []
