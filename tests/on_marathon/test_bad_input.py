"""Bad input: one clear line, exit 2, and no mutating request reaches Marathon."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from emulator import MarathonEmulator
from helpers import treadle


def seeded(marathon: MarathonEmulator) -> None:
    marathon.add_app(
        {
            "id": "/web-prod-v000",
            "instances": 1,
            "container": {"type": "DOCKER", "docker": {"image": "web:1"}},
        }
    )


CASES = {
    "invalid app name": ["deploy", "--app", "Web", "--image", "web:2"],
    "invalid stack": ["deploy", "--app", "web", "--stack", "pr_od", "--image", "web:2"],
    "invalid cluster": ["deploy", "--cluster", "web-prod-", "--image", "web:2"],
    "no cluster": ["deploy", "--image", "web:2"],
    "unknown strategy": ["deploy", "--app", "web", "--image", "web:2", "--strategy", "blue-green"],
    "bad steps": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--strategy",
        "rolling-red-black",
        "--steps",
        "50,25",
    ],
    "max-remaining without red-black": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--max-remaining",
        "1",
    ],
    "instances not a number": ["deploy", "--app", "web", "--image", "web:2", "--instances", "many"],
    "negative instances": ["deploy", "--app", "web", "--image", "web:2", "--instances", "-1"],
    "invalid region": ["deploy", "--app", "web", "--image", "web:2", "--region", "/Prod"],
    "invalid timeout": ["deploy", "--app", "web", "--image", "web:2", "--timeout", "soon"],
    "image with spaces": ["deploy", "--app", "web", "--image", "web 2"],
    "missing spec": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--spec",
        "/nonexistent/app.json",
    ],
    "broken spec": ["deploy", "--app", "web", "--image", "web:2", "--spec", "{broken}"],
    "spec with unknown field": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--spec",
        "{unknown}",
    ],
    "broken context": ["deploy", "--app", "web", "--image", "web:2", "--context", "{broken}"],
    "placeholder matching nothing": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:{{ outputs.version }}",
        "--context",
        "{context}",
    ],
    "placeholder in spec matching nothing": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--spec",
        "{templated}",
        "--context",
        "{context}",
    ],
    "unknown provider": ["deploy", "--app", "web", "--image", "web:2", "--provider", "kubernetes"],
    "unknown option": ["deploy", "--app", "web", "--image", "web:2", "--strateg", "none"],
    "resize without mode": ["resize", "--server-group", "web-prod-v000"],
    "resize two modes": [
        "resize",
        "--server-group",
        "web-prod-v000",
        "--instances",
        "2",
        "--scale-up",
        "1",
    ],
    "invalid server group": ["destroy", "--server-group", "web-prod"],
    "cluster without target": ["disable", "--cluster", "web-prod"],
    "unknown target": ["enable", "--cluster", "web-prod", "--target", "latest"],
    "server group and cluster": [
        "destroy",
        "--server-group",
        "web-prod-v000",
        "--cluster",
        "web-prod",
        "--target",
        "newest",
    ],
    "unknown selection": ["find-image", "--cluster", "web-prod", "--selection", "random"],
    "invalid image pattern": ["find-image", "--cluster", "web-prod", "--image-pattern", "web:("],
    "invalid marathon url": [
        "destroy",
        "--server-group",
        "web-prod-v000",
        "--marathon-url",
        "marathon.example:8080",
    ],
    "half basic auth": ["destroy", "--server-group", "web-prod-v000", "--username", "ci"],
    "a placeholder giving an object for a name": [
        "deploy",
        "--app",
        "{{ outputs.object }}",
        "--image",
        "web:2",
        "--context",
        "{context}",
    ],
    "a placeholder giving a list for a server group": [
        "resize",
        "--server-group",
        "{{ outputs.list }}",
        "--instances",
        "2",
        "--context",
        "{context}",
    ],
    "a placeholder giving true for a url": [
        "find-image",
        "--cluster",
        "web-prod",
        "--marathon-url",
        "{{ outputs.yes }}",
        "--context",
        "{context}",
    ],
    "a placeholder giving a number for a timezone": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--timezone",
        "{{ outputs.other }}",
        "--context",
        "{context}",
    ],
    "a spec key that is not text": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--spec",
        "{intkey}",
    ],
    "a spec number that is not finite": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--spec",
        "{nan}",
    ],
    "more instances than any cluster": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--instances",
        "1" + "0" * 30,
    ],
    "a resize beyond any cluster": [
        "resize",
        "--server-group",
        "web-prod-v000",
        "--scale-pct",
        "1e308",
    ],
    "a percentage that is no number": [
        "resize",
        "--server-group",
        "web-prod-v000",
        "--scale-pct",
        "nan",
    ],
    "a malformed url": ["find-image", "--cluster", "web-prod", "--marathon-url", "http://[::1"],
    "a jitter longer than the timeout": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--timeout",
        "8s",
        "--jitter",
        "12s-12s",
    ],
    "a timeout of 400 nines": [
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--timeout",
        "9" * 400,
    ],
    "missing ca cert": [
        "destroy",
        "--server-group",
        "web-prod-v000",
        "--ca-cert",
        "/nonexistent/ca.pem",
    ],
}

# The files the cases name by placeholder: their names and contents.
FILES = {
    "{broken}": ("broken.json", '{"image": '),
    "{unknown}": ("unknown.json", json.dumps({"cpus": 0.1, "instancez": 3})),
    "{context}": (
        "context.json",
        json.dumps({"outputs": {"other": 1, "object": {"k": "v"}, "list": ["a"], "yes": True}}),
    ),
    "{intkey}": ("intkey.yaml", "env:\n  1: two\n"),
    "{nan}": ("nan.json", '{"cpus": NaN}'),
    "{templated}": ("templated.yaml", "env:\n  VERSION: '{{ outputs.version }}'\n"),
}


def command_line(case: list[str], folder: Path, marathon_url: str) -> list[str]:
    """A case's arguments, its placeholders written as files in `folder`, pointed at the
    emulator unless the case names a Marathon URL of its own."""
    for name, text in FILES.values():
        (folder / name).write_text(text)
    args = [str(folder / FILES[a][0]) if a in FILES else a for a in case]
    if not any(a.startswith("--marathon-url") for a in args):
        args += ["--marathon-url", marathon_url]
    return args


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    case: str, marathon: MarathonEmulator, tmp_path: Path
) -> None:
    seeded(marathon)
    args = command_line(CASES[case], tmp_path, marathon.url)
    before = len(marathon.mutating_requests())

    outcome = treadle(*args)

    assert outcome.code == 2, outcome
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1, outcome.stderr
    assert "error" in lines[0] and "Traceback" not in outcome.stderr
    assert marathon.mutating_requests()[before:] == []
    assert marathon.app("/web-prod-v000") is not None


def test_the_result_is_written_for_bad_input_too(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    result_file = tmp_path / "result.json"
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--strategy",
        "blue-green",
        "--marathon-url",
        marathon.url,
        "--output",
        str(result_file),
    )
    assert outcome.code == 2
    result = json.loads(result_file.read_text())
    assert result["status"] == "failed"
    assert result["error"]["type"] == "InputError"
    assert "blue-green" in result["error"]["message"]
    assert result["stage"] == "deploy" and result["provider"] == "marathon"


def test_placeholder_error_names_expression_and_file(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    context = tmp_path / "job.json"
    context.write_text(json.dumps({"outputs": {}}))
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "repo:{{ outputs.version }}",
        "--context",
        str(context),
        "--marathon-url",
        marathon.url,
    )
    assert outcome.code == 2
    assert "{{ outputs.version }}" in outcome.stderr and str(context) in outcome.stderr


def test_verify_with_nothing_to_reach_is_refused_before_any_change(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    """Marathon publishes no endpoint of a server group: a verify file must name the URL."""
    check = tmp_path / "verify.yaml"
    check.write_text("requests: 5\n")
    outcome = treadle(
        "deploy",
        "--cluster",
        "web-prod",
        "--image",
        "web:2",
        "--verify",
        str(check),
        "--marathon-url",
        marathon.url,
    )
    assert outcome.code == 2, outcome
    assert outcome.error_lines == [
        "error: --verify: the marathon provider publishes no endpoint to check: give url in "
        "the verify file (the address your load balancer serves)"
    ]
    assert marathon.app_changes() == []


def test_a_bug_after_a_change_still_rolls_back_and_writes_the_result(
    marathon: MarathonEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception no part of treadle meant to raise, once the new group is made: the
    rollback asked for runs, the result is written, one line, exit 1, no traceback."""
    from treadle.stages import measure

    seeded(marathon)
    check = tmp_path / "verify.yaml"
    check.write_text("url: http://127.0.0.1:9/\n")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something no one foresaw")

    monkeypatch.setattr(measure, "send", broken)
    result = tmp_path / "result.json"
    outcome = treadle(
        "deploy",
        "--cluster",
        "web-prod",
        "--image",
        "web:2",
        "--strategy",
        "red-black",
        "--verify",
        str(check),
        "--rollback-on-failure",
        "--marathon-url",
        marathon.url,
        "--output",
        str(result),
    )
    assert outcome.code == 1, outcome
    assert "Traceback" not in outcome.stderr
    assert (
        outcome.error_lines
        and "unexpected RuntimeError: something no one foresaw" in (outcome.error_lines[0])
    )
    written = json.loads(result.read_text())
    assert written["server_group"] == "web-prod-v001" and written["rolled_back"] is True
    old, new = marathon.app("/web-prod-v000"), marathon.app("/web-prod-v001")
    assert old is not None and old["instances"] == 1
    assert new is not None and new["instances"] == 0


@pytest.mark.parametrize("flag", ["--output", "--dotenv"])
def test_a_destination_that_is_a_folder_is_one_line(
    marathon: MarathonEmulator, tmp_path: Path, flag: str
) -> None:
    """Told once, before anything is done; the result goes to stdout instead."""
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        flag,
        str(tmp_path),
        "--marathon-url",
        marathon.url,
    )
    assert outcome.code == 2, outcome
    assert len(outcome.error_lines) == 1 and flag in outcome.error_lines[0], outcome.stderr
    assert marathon.mutating_requests() == []
