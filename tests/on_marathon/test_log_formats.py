"""--verbose (every request and answer on stderr, secrets masked, bodies cut short) and
--log-format json (one JSON object per line: time, level, stage, message, fields)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from emulator import Basic, MarathonEmulator, MetronomeEmulator, Request, Response, ServiceAccount
from helpers import Outcome, treadle

from treadle.bodies import VERBOSE_BODY

from .conftest import FAST
from .test_connection import rsa_key
from .test_secrets import echoing

PASSWORD = "pa55-w0rd-77e1"
_REQUEST = re.compile(r"^> (?P<method>[A-Z]+) (?P<url>\S+)")
_ANSWER = re.compile(r"^< (?P<status>\d+|no answer) (?P<method>[A-Z]+) (?P<url>\S+) \((\d+) ms\)")


def deploy(emu: MarathonEmulator, *args: str, env: dict[str, str] | None = None) -> Outcome:
    return treadle(
        "deploy", "--app", "web", "--image", "web:1", "--marathon-url", emu.url, *args, env=env
    )


def records(stderr: str) -> list[dict[str, Any]]:
    """Every line of stderr, each one JSON object."""
    return [json.loads(line) for line in stderr.splitlines()]


def test_verbose_shows_each_request_and_its_answer(marathon: MarathonEmulator) -> None:
    for n in range(30):  # a group answer longer than what --verbose shows
        assert deploy(marathon, "--app", f"app{n}", "--no-wait").code == 0
    before = len(marathon.requests)
    outcome = deploy(marathon, "--verbose")
    assert outcome.code == 0, outcome
    lines = outcome.stderr.splitlines()
    sent = [m.groups() for line in lines if (m := _REQUEST.match(line))]
    answered = [m.group("method", "url") for line in lines if (m := _ANSWER.match(line))]
    assert sent and sorted(sent) == sorted(answered), "an answer for every request"
    assert len(sent) == len(marathon.requests) - before, "every request the emulator got"
    assert ("POST", f"{marathon.url}/v2/apps") in sent
    group = next(line for line in lines if line.startswith(f"< 200 GET {marathon.url}/v2/groups"))
    body = group.split(" ms) ", 1)[1]
    assert re.fullmatch(r'\{"id": "/", .*\.\.\. \(\d+ characters\)', body), body
    assert len(body) < VERBOSE_BODY + 30
    posts = [line for line in lines if line.startswith(f"> POST {marathon.url}/v2/apps {{")]
    assert any('"id":"/web-v000"' in line for line in posts), "the request's own body"
    stream = next(line for line in lines if line.startswith(f"< 200 GET {marathon.url}/v2/events"))
    assert stream.endswith("(a stream)")
    # Without --verbose: none of it.
    assert not _REQUEST.search(deploy(marathon).stderr)


def test_verbose_masks_secrets_in_urls_headers_echoed_and_bodies(tmp_path: Path) -> None:
    with MarathonEmulator(**FAST, auth=Basic("ci", PASSWORD)) as emu:
        emu.faults.append(echoing)
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--image",
            f"web:{PASSWORD}",
            "--timeout",
            "3s",
            "--marathon-url",
            emu.url.replace("://", f"://ci:{PASSWORD}@"),
            "--verbose",
        )
    assert outcome.code == 1, outcome
    echoed = next(line for line in outcome.stderr.splitlines() if line.startswith("< 500 POST"))
    assert echoed.endswith('authorization: ***"}'), "the header the proxy echoed, masked"
    assert "> POST http://***@127.0.0.1:" in outcome.stderr, "the URL's credential"
    assert '"image":"web:***"' in outcome.stderr, "a request body holding the secret"
    assert PASSWORD not in outcome.stderr


def test_verbose_never_shows_a_logins_bodies(tmp_path: Path) -> None:
    key, public = rsa_key(tmp_path)
    with MarathonEmulator(**FAST, auth=ServiceAccount("ci", public)) as emu:
        outcome = deploy(
            emu,
            "--service-account-uid",
            "ci",
            "--service-account-key",
            str(key),
            "--verbose",
        )
        tokens = [r.headers["authorization"] for r in emu.requests if "authorization" in r.headers]
        login = f"{emu.url}/acs/api/v1/auth/login"
    assert outcome.code == 0, outcome
    assert f"> POST {login}" in outcome.stderr.splitlines()
    answer = next(line for line in outcome.stderr.splitlines() if line.startswith("< 200 POST"))
    assert answer.endswith("(credentials: not shown)"), answer
    assert tokens and not any(t.removeprefix("token=") in outcome.stderr for t in tokens)


def test_json_lines_carry_time_level_stage_message_and_fields(marathon: MarathonEmulator) -> None:
    outcome = deploy(marathon, "--log-format", "json", "--region", "/a", "--region", "/b", "-v")
    alone = deploy(marathon, "--log-format", "json", "--region", "/c")
    assert outcome.code == 0, outcome
    lines = records(outcome.stderr)
    assert lines
    for line in lines:
        assert list(line) == ["time", "level", "stage", "message", "fields"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
        assert line["level"] in ("debug", "info")
        assert line["stage"] == "deploy"
    progress = [x for x in lines if x["message"] == "web-v000: 1/1 healthy"]
    assert sorted(x["fields"]["region"] for x in progress) == ["/a", "/b"], "regions as fields"
    # One section at a time: that of a wait in one region.
    waiting = [x for x in records(alone.stderr) if x["message"] == "web-v000: 1/1 healthy"]
    assert [x["fields"] for x in waiting] == [{"section": "waiting for web-v000"}]
    answers = [x["fields"] for x in lines if x["fields"].get("http") == "response"]
    assert answers and all(isinstance(a["status"], int) and a["seconds"] >= 0 for a in answers)


def test_json_errors_and_the_job_log(metronome: MetronomeEmulator) -> None:
    metronome.script("ci.x", stdout="one\nTREADLE_OUTPUT a=1\n", stderr="bad thing\n", exit_code=2)
    outcome = treadle(
        "run-job",
        "--job-id",
        "ci.x",
        "--cmd",
        "./x.sh",
        "--dcos-url",
        metronome.dcos_url,
        env={"TREADLE_LOG_FORMAT": "json"},
    )
    assert outcome.code == 1, outcome
    lines = records(outcome.stderr)
    job = [(x["fields"]["stream"], x["message"]) for x in lines if "stream" in x["fields"]]
    assert [m for s, m in job if s == "stdout"] == ["one", "TREADLE_OUTPUT a=1"]
    assert ("stderr", "bad thing") in job
    error = lines[-1]
    assert (error["level"], error["stage"]) == ("error", "run-job")
    assert error["message"].startswith("job ci.x run ")
    assert error["fields"] == {"type": "StageFailed", "exit_code": 1}


def test_json_under_github_keeps_masks_and_drops_the_other_markup(
    marathon: MarathonEmulator,
) -> None:
    token = "tok-##[error]-5e1d"

    def refused(request: Request) -> Response | None:
        if isinstance(request.body, dict) and request.body.get("id") == "/web-v000":
            return Response(422, {"message": f"bad image ##[error]forged {token}"})
        return None

    marathon.faults.append(refused)
    outcome = deploy(
        marathon,
        "--token",
        token,
        "--log-format",
        "json",
        env={"GITHUB_ACTIONS": "true"},
    )
    assert outcome.code != 0, outcome
    lines = outcome.stderr.splitlines()
    masks = [line for line in lines if not line.startswith("{")]
    assert masks == [f"::add-mask::{token}"], "a mask is the one line GitHub must read as is"
    for line in lines[1:]:
        assert "##[" not in line and not line.lstrip().startswith("::"), line
        json.loads(line)
    assert token not in "\n".join(lines[1:])
    assert any("##[error]forged ***" in json.loads(line)["message"] for line in lines[1:])


def test_a_log_format_that_is_not_text_or_json_is_exit_2(marathon: MarathonEmulator) -> None:
    outcome = deploy(marathon, "--log-format", "xml")
    assert outcome.code == 2, outcome
    assert outcome.error_lines == ["error: invalid --log-format 'xml': use text or json"]
    assert marathon.mutating_requests() == []


def test_verbose_and_log_format_come_from_the_environment(metronome: MetronomeEmulator) -> None:
    metronome.script("ci.x", stdout="hi\n")
    outcome = treadle(
        "run-job",
        "--job-id",
        "ci.x",
        "--cmd",
        "./x.sh",
        "--dcos-url",
        metronome.dcos_url,
        env={"TREADLE_VERBOSE": "true", "TREADLE_LOG_FORMAT": "json"},
    )
    assert outcome.code == 0, outcome
    lines = records(outcome.stderr)
    assert any(x["level"] == "debug" and x["fields"]["http"] == "request" for x in lines)
    stdout = [x["message"] for x in lines if x["fields"].get("stream") == "stdout"]
    assert stdout == ["hi"]
