"""verify (treadle.stages.verify, treadle verify) against a real HTTP server on 127.0.0.1
that counts what it receives: the figures agree with the server's own, thresholds pass
and fail as they should, bad input changes nothing, secrets stay hidden, and a CI cancel
ends a long run at once with its result written."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import pytest
from helpers import Outcome, treadle

from treadle.cli.commands.verify import load_verify_file
from treadle.console import Console
from treadle.context import Context
from treadle.errors import InputError, StageFailed
from treadle.providers.base import Provider
from treadle.stages.runtime import Runtime
from treadle.stages.verify import Check, Statuses, endpoint_urls, result_urls, verify
from treadle.waiting import Deadline


@dataclass
class Route:
    status: int = 200
    body: bytes = b"ok"
    delay: float = 0.0
    # Every n-th request to the route answers 503 instead.
    fail_every: int = 0
    # Answer with the request's Authorization header in the body.
    echo_auth: bool = False
    # Close the connection without answering.
    drop: bool = False


@dataclass
class Server:
    """What the server received: requests in all, per path and per status answered, and
    the most it had in flight at once."""

    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)
    answered: Counter[int] = field(default_factory=Counter)
    in_flight: int = 0
    most_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def count(self) -> int:
        return sum(self.received.values())


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real services answer
        # Headers and body in separate writes would wait on the client's delayed ACK.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            path = self.path.split("?")[0]
            route = state.routes.get(path, Route(404, b"no such route"))
            with state.lock:
                state.received[path] += 1
                n = state.received[path]
                state.in_flight += 1
                state.most_in_flight = max(state.most_in_flight, state.in_flight)
            try:
                if route.delay:
                    state.stop.wait(route.delay)
                if route.drop:
                    self.close_connection = True
                    return
                status = route.status
                if route.fail_every and n % route.fail_every == 0:
                    status = 503
                body = route.body
                if route.echo_auth:
                    body = f"denied: {self.headers.get('Authorization')}".encode()
                with state.lock:
                    state.answered[status] += 1
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            finally:
                with state.lock:
                    state.in_flight -= 1

        def log_message(self, *args: Any) -> None:
            pass

    class Quiet(ThreadingHTTPServer):
        block_on_close = False
        # The default listen backlog of 5 drops the SYNs of ten connections opened at once,
        # which the kernel sends again a second later.
        request_queue_size = 128

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that gave up (a timeout test) is no news

    httpd = Quiet(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        httpd.shutdown()
        httpd.server_close()


def run(*args: str, output: Path | None = None) -> Outcome:
    outcome = treadle("verify", *args, *(["--output", str(output)] if output else []))
    return outcome


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the figures ---------------------------------------------------------------------------


def test_counts_agree_with_the_servers_count(server: Server) -> None:
    server.routes["/a"] = Route()
    server.routes["/b"] = Route(fail_every=4)
    out = run(
        "--url", f"{server.url}/a", "--url", f"{server.url}/b",
        "--requests", "400", "--concurrency", "8", "--min-success-ratio", "0.5",
    )  # fmt: skip
    assert out.code == 0, out
    result = out.result
    assert result is not None
    assert result["requests"] == server.count == 400
    assert server.received == {"/a": 200, "/b": 200}
    assert result["statuses"] == {str(s): n for s, n in server.answered.items()}
    assert result["statuses"] == {"200": 350, "503": 50}
    assert result["succeeded"] == 350 and result["failed"] == 50
    assert result["success_ratio"] == 350 / 400
    assert result["errors"] == {}
    p50, p95, p99, most = (result[f"latency_{p}_ms"] for p in ("p50", "p95", "p99", "max"))
    assert 0 < p50 <= p95 <= p99 <= most
    assert len(result["first_errors"]) == 5
    assert result["first_errors"][0]["status"] == 503
    assert result["passed"] is True


def test_the_default_is_one_request_per_url(server: Server) -> None:
    server.routes["/a"] = Route()
    server.routes["/b"] = Route()
    out = run("--url", f"{server.url}/a", "--url", f"{server.url}/b")
    assert out.code == 0, out
    assert out.result is not None and out.result["requests"] == 2
    assert server.received == {"/a": 1, "/b": 1}
    assert "verify: passed" in out.stderr


# --- thresholds ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ratio", "code"), [("0.7", 0), ("0.75", 0), ("0.8", 1)], ids=["below", "at", "above"]
)
def test_min_success_ratio(server: Server, ratio: str, code: int) -> None:
    server.routes["/"] = Route(fail_every=4)
    out = run(
        "--url", f"{server.url}/", "--requests", "100", "--concurrency", "4",
        "--min-success-ratio", ratio,
    )  # fmt: skip
    assert out.code == code, out
    assert out.result is not None and out.result["success_ratio"] == 0.75
    assert out.result["passed"] is (code == 0)
    if code:
        assert out.result["status"] == "failed"
        assert out.error_lines == [
            "error: verify failed: 75 of 100 requests succeeded (ratio 0.75 < 0.8)"
        ]


@pytest.mark.parametrize(("limit", "code"), [("1s", 0), ("50ms", 1)])
def test_max_p95_with_a_slow_handler(server: Server, limit: str, code: int) -> None:
    server.routes["/slow"] = Route(delay=0.1)
    out = run(
        "--url", f"{server.url}/slow", "--requests", "6", "--concurrency", "6", "--max-p95", limit
    )
    assert out.code == code, out
    assert out.result is not None
    assert 100 <= out.result["latency_p95_ms"] < 1000
    assert out.result["thresholds"][1]["passed"] is (code == 0)
    if code:
        assert "p95" in out.error_lines[0] and "> 50 ms" in out.error_lines[0]


@pytest.mark.parametrize(
    ("expect", "code"),
    [(None, 1), ("404", 0), ("4xx", 0), ("200,400-404", 0), ("2xx,5xx", 1)],
)
def test_expect_status(server: Server, expect: str | None, code: int) -> None:
    out = run("--url", f"{server.url}/missing", *(["--expect-status", expect] if expect else []))
    assert out.code == code, out
    assert out.result is not None and out.result["statuses"] == {"404": 1}


def test_expect_status_from_a_placeholder_giving_a_list(server: Server, tmp_path: Path) -> None:
    context = tmp_path / "ok.json"
    context.write_text('{"statuses": [200, 404]}')
    out = run(
        "--url",
        f"{server.url}/missing",
        "--expect-status",
        "{{ ok.statuses }}",
        "--context",
        f"ok={context}",
    )
    assert out.code == 0, out


def test_body_contains(server: Server) -> None:
    server.routes["/"] = Route(body=b'{"status": "UP"}')
    passed = run("--url", f"{server.url}/", "--body-contains", '"UP"')
    assert passed.code == 0, passed
    failed = run("--url", f"{server.url}/", "--body-contains", "DOWN", "--requests", "3")
    assert failed.code == 1, failed
    assert failed.result is not None
    assert failed.result["statuses"] == {"200": 3} and failed.result["succeeded"] == 0
    first = failed.result["first_errors"][0]
    assert first["error"] == "body" and first["body"] == '{"status": "UP"}'


# --- time and concurrency ------------------------------------------------------------------


def test_duration_bounds_the_run(server: Server) -> None:
    server.routes["/"] = Route(delay=0.1)
    started = time.monotonic()
    out = run("--url", f"{server.url}/", "--duration", "1.5s", "--concurrency", "2")
    took = time.monotonic() - started
    assert out.code == 0, out
    assert out.result is not None
    # It stops at the duration, not at some count (the server holds each request 0.1 s).
    assert 1.5 <= took < 4
    # Two at a time, 0.1 s each, for 1.5 s: at most 30, each one counted by the server.
    assert 2 <= out.result["requests"] == server.count <= 32
    assert "verify: " in out.stderr and " requests, 0 failed, p95 " in out.stderr


def test_requests_run_concurrently(server: Server) -> None:
    # Each held a second: long enough for all ten workers to start on a busy machine.
    server.routes["/"] = Route(delay=1.0)
    out = run("--url", f"{server.url}/", "--requests", "10", "--concurrency", "10")
    assert out.code == 0, out
    # All ten were in the server at once.
    assert server.most_in_flight == 10


def test_the_timeout_stops_starting_requests(server: Server) -> None:
    server.routes["/"] = Route(delay=0.3)
    out = run("--url", f"{server.url}/", "--requests", "1000", "--timeout", "1s")
    assert out.code == 1, out
    assert out.result is not None and out.result["error"]["type"] == "Timeout"
    assert 2 <= out.result["requests"] <= server.count <= 5


# --- requests without an answer ------------------------------------------------------------


def test_refused_connections_are_counted_as_such() -> None:
    out = run("--url", f"http://127.0.0.1:{closed_port()}/", "--requests", "3")
    assert out.code == 1, out
    assert out.result is not None
    assert out.result["errors"] == {"refused": 3} and out.result["statuses"] == {}
    assert out.result["first_errors"][0]["error"] == "refused"
    assert out.result["latency_p95_ms"] is None


def test_timeouts_and_dropped_connections_are_counted_per_kind(server: Server) -> None:
    server.routes["/hang"] = Route(delay=5)
    server.routes["/drop"] = Route(drop=True)
    server.routes["/"] = Route()
    started = time.monotonic()
    out = run(
        "--url", f"{server.url}/hang", "--url", f"{server.url}/drop", "--url", f"{server.url}/",
        "--requests", "6", "--concurrency", "6", "--request-timeout", "0.3s",
        "--min-success-ratio", "0.3",
    )  # fmt: skip
    # Well before /hang would have answered.
    assert time.monotonic() - started < 4
    assert out.code == 0, out
    assert out.result is not None
    assert out.result["errors"] == {"timeout": 2, "reset": 2}
    assert out.result["statuses"] == {"200": 2}
    assert server.count == 6


# --- inputs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-success-ratio", "1.5"], "invalid --min-success-ratio '1.5': must be more than 0"),
        (["--min-success-ratio", "0"], "invalid --min-success-ratio '0'"),
        (["--requests", "0"], "invalid --requests '0': must be from 1 to 1,000,000"),
        (["--concurrency", "1000"], "invalid --concurrency '1000'"),
        (["--max-p95", "fast"], "invalid --max-p95 'fast'"),
        (["--expect-status", "ok"], "invalid --expect-status 'ok'"),
        (["--expect-status", "399-200"], "the range 399-200 goes backwards"),
        (["--path", "/health"], "--path goes with a deploy's endpoints"),
    ],
)
def test_bad_options_are_one_line_and_send_nothing(
    server: Server, args: list[str], message: str
) -> None:
    out = run("--url", f"{server.url}/", *args)
    assert out.code == 2, out
    assert len(out.error_lines) == 1 and message in out.error_lines[0], out
    assert server.count == 0


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/file",
        "127.0.0.1:8080",
        "file:///etc/passwd",
        "http://",
        f"http://{'a' * 64}.example/",  # a DNS label is at most 63 characters
        "http://a..b/",
    ],
)
def test_only_http_urls(url: str) -> None:
    out = run("--url", url)
    assert out.code == 2, out
    assert len(out.error_lines) == 1 and f"invalid --url {url!r}" in out.error_lines[0]


def test_no_url_names_what_to_give() -> None:
    out = run()
    assert out.code == 2, out
    assert out.error_lines == [
        "error: give --url URL, or the deploy result whose endpoints to check: "
        "--context deploy=deploy.json"
    ]


def test_the_endpoints_of_a_deploy_result(server: Server, tmp_path: Path) -> None:
    server.routes["/health"] = Route()
    port = server.url.rsplit(":", 1)[1]
    deploy = {
        "server_group": "web-v001",
        "endpoints": [f"127.0.0.1:{port}", f"127.0.0.1:{port}/udp"],
    }
    (tmp_path / "deploy.json").write_text(json.dumps(deploy))
    out = run("--context", f"deploy={tmp_path / 'deploy.json'}", "--path", "/health")
    assert out.code == 0, out
    assert out.result is not None and out.result["urls"] == [f"{server.url}/health"]
    assert server.received == {"/health": 1}


def test_a_deploy_result_without_endpoints(tmp_path: Path) -> None:
    (tmp_path / "deploy.json").write_text(json.dumps({"server_group": "web-v001"}))
    out = run("--context", f"deploy={tmp_path / 'deploy.json'}")
    assert out.code == 2, out
    assert "has no url or endpoints" in out.error_lines[0] and "--url" in out.error_lines[0]


def test_a_secret_in_a_url_is_never_printed(server: Server, tmp_path: Path) -> None:
    server.routes["/"] = Route(status=401, echo_auth=True)
    secret = "s3cret-Pa55"
    url = f"http://deployer:{secret}@{server.url.removeprefix('http://')}/"
    out = run("--url", url, "--requests", "2", output=tmp_path / "result.json")
    assert out.code == 1, out
    written = (tmp_path / "result.json").read_text()
    basic = base64.b64encode(f"deployer:{secret}".encode()).decode()
    for text in (out.stderr, written):
        assert secret not in text and basic not in text
    result = json.loads(written)
    assert result["urls"] == [f"http://***@{server.url.removeprefix('http://')}/"]
    # The server did get the credential, and echoed it: the body is masked.
    assert result["first_errors"][0]["body"] == "denied: ***"


def test_dry_run_sends_nothing(server: Server) -> None:
    out = run("--url", f"{server.url}/", "--requests", "50", "--dry-run")
    assert out.code == 0, out
    assert out.result is not None and out.result["dry_run"] is True
    assert "would send 50 requests" in out.stderr
    assert server.count == 0


# --- the verify file (deploy --verify FILE) ------------------------------------------------


def test_a_verify_file(tmp_path: Path) -> None:
    path = tmp_path / "verify.yaml"
    path.write_text(
        "path: /health\nrequests: 200\nconcurrency: 10\nduration: 30s\n"
        "expect-status: [200, 3xx]\nbody-contains: UP\nmin-success-ratio: 0.99\n"
        "max-p95: 250ms\nrequest-timeout: '{{ limits.request }}'\n"
    )
    context = Context({"limits": {"request": "2s"}})
    check = load_verify_file(str(path), context)
    assert check == Check(
        path="/health",
        requests=200,
        concurrency=10,
        duration=30.0,
        expect_status=Statuses(((200, 200), (300, 399)), "200,3xx"),
        body_contains="UP",
        min_success_ratio=0.99,
        max_p95=0.25,
        request_timeout=2.0,
    )
    deployed = check.against(["10.0.0.5:31001", "10.0.0.6:31002/udp"])
    assert deployed.urls == ("http://10.0.0.5:31001/health",)
    own = Check.parse({"url": "https://web.example/"}).against(["10.0.0.5:31001"])
    assert own.urls == ("https://web.example/",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "min_success_ratio: 0.9\n",
            "unknown key 'min_success_ratio' (did you mean 'min-success-ratio'?)",
        ),
        ("retries: 3\n", "unknown key 'retries' (known keys: url, path, requests"),
        (
            "min-success-ratio: 1.5\n",
            "invalid min-success-ratio 1.5: must be more than 0 and at most 1",
        ),
        (
            "url: ftp://files.example/\n",
            "invalid url 'ftp://files.example/': verify checks http:// and https:// URLs only",
        ),
        ("requests: 0\n", "invalid requests 0: must be from 1"),
        ("requests: 2.5\n", "invalid requests 2.5: expected a whole number"),
        ("concurrency: true\n", "invalid concurrency True: expected a whole number"),
        ("body-contains: 42\n", "invalid body-contains 42: expected text"),
        ("max-p95: -1\n", "invalid max-p95 -1: must be more than 0"),
        ("- url\n", "expected a mapping of keys"),
    ],
)
def test_a_bad_verify_file_is_one_line_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "verify.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as e:
        load_verify_file(str(path), Context())
    assert e.value.exit_code == 2
    assert str(e.value).startswith(f"verify file {path}: ")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_urls_of_a_multi_region_result() -> None:
    result = {
        "endpoints": ["127.0.0.1:1001"],
        "regions": [{"endpoints": ["127.0.0.1:1001"]}, {"endpoints": ["[::1]:1002"]}],
    }
    assert result_urls(result, "/ping") == ["http://127.0.0.1:1001/ping", "http://[::1]:1002/ping"]
    assert result_urls({"url": "https://web.example/"}) == ["https://web.example/"]
    assert endpoint_urls(["127.0.0.1:5353/udp"]) == []


def test_the_stage_function_deploy_calls(server: Server) -> None:
    """verify(rt, check): the fields on success; StageFailed (exit 1) carrying them when a
    threshold fails."""
    server.routes["/"] = Route(fail_every=2)
    endpoints = [server.url.removeprefix("http://")]
    stream = io.StringIO()
    rt = Runtime(cast(Provider, None), Console(stream), Deadline(30))
    with pytest.raises(StageFailed) as e:
        verify(rt, Check(requests=4).against(endpoints))
    assert e.value.exit_code == 1
    assert e.value.fields["statuses"] == {"200": 2, "503": 2}
    assert e.value.fields["passed"] is False
    half = Check.parse({"min-success-ratio": 0.5, "requests": 4})
    fields = verify(rt, half.against(endpoints))
    assert fields["passed"] is True and server.count == 8
    assert "verify: passed" in stream.getvalue()


# --- a CI cancel ---------------------------------------------------------------------------


def test_sigterm_ends_a_long_verify_with_its_result_written(server: Server, tmp_path: Path) -> None:
    server.routes["/"] = Route(delay=0.2)
    server.routes["/hang"] = Route(delay=30)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TREADLE_", "GITHUB_"))}
    output = tmp_path / "result.json"
    process = subprocess.Popen(
        [
            sys.executable, "-m", "treadle", "verify",
            "--url", f"{server.url}/", "--url", f"{server.url}/hang",
            "--duration", "10m", "--concurrency", "4", "--output", str(output),
        ],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if " requests, " in line:  # the first progress line: under way
            break
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    process.wait(timeout=10)
    took = time.monotonic() - signalled
    process.stderr.close()
    assert took < 3, f"took {took:.1f}s to end after SIGTERM"
    assert process.returncode == 1
    result = json.loads(output.read_text())
    assert result["status"] == "failed" and result["error"]["type"] == "Cancelled"
    assert 0 < result["requests"] <= server.count
    assert result["statuses"]["200"] == result["requests"]
