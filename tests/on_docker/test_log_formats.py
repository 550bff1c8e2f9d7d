"""--verbose and --log-format json on the Docker engine: every call the SDK makes, as the
Marathon client's are; a job's two streams apart."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from dockerish import IMAGE, deploy_on, treadle_on_engine

from treadle.bodies import shown_body

pytestmark = pytest.mark.docker


def test_verbose_shows_the_engines_calls(engine: Any, region: str, tmp_path: Path) -> None:
    outcome = deploy_on("docker", region, tmp_path, None, "--verbose")
    assert outcome.code == 0, outcome
    lines = outcome.stderr.splitlines()
    sent = [line.split()[1:3] for line in lines if line.startswith("> ")]
    answered = [line.split()[2:4] for line in lines if line.startswith("< ")]
    assert sent and sorted(sent) == sorted(answered), "an answer for every call"
    creates = [line for line in lines if re.match(r"> POST \S+/containers/create\?", line)]
    assert any(f'"Image": "{IMAGE}"' in line for line in creates), "the request's own body"
    events = next(line for line in lines if re.match(r"< 200 GET \S+/events\?", line))
    assert events.endswith("(a stream)")


def test_verbose_shows_no_value_of_an_environment(engine: Any, region: str, tmp_path: Path) -> None:
    """The container's create body and its inspections carry its environment: the names
    show, never the values (where a service's secrets usually are)."""
    spec = {"environment": {"API_TOKEN": "tok-5f1e9c2a-never-shown"}}
    outcome = deploy_on("docker", region, tmp_path, spec, "--verbose")
    assert outcome.code == 0, outcome
    assert "tok-5f1e9c2a-never-shown" not in outcome.stderr + outcome.stdout
    assert '"API_TOKEN=***"' in outcome.stderr


def test_verbose_shows_no_secret_or_config_data() -> None:
    """A Swarm secret's or config's create body holds its content (base64)."""
    body = json.dumps({"Name": "db-password", "Data": "aHVudGVyMg==", "Labels": {}})
    assert shown_body(body.encode(), "application/json") == (
        '{"Name": "db-password", "Data": "***", "Labels": {}}'
    )


def test_a_jobs_streams_as_json_lines(engine: Any, region: str) -> None:
    outcome = treadle_on_engine(
        "run-job",
        "--job-id",
        f"j{region}",
        "--image",
        IMAGE,
        "--cmd",
        "echo out; echo err >&2",
        "--log-format",
        "json",
    )
    assert outcome.code == 0, outcome
    records = [json.loads(line) for line in outcome.stderr.splitlines()]
    job = [(r["fields"]["stream"], r["message"]) for r in records if "stream" in r["fields"]]
    assert job == [("stdout", "out"), ("stderr", "err")]
