"""Results reach the next step whole: atomic files, GitHub outputs, GitLab dotenv."""

from __future__ import annotations

import os
from pathlib import Path

from treadle.outputs import dotenv, github_outputs, publish, scalar_fields, write_atomically

RESULT = {
    "stage": "deploy",
    "status": "failed",
    "server_group": "web-prod-v001",
    "instances": 3,
    "rolled_back": True,
    "previous_server_group": None,
    "disabled_server_groups": ["web-prod-v000"],
    "error": {"type": "Timeout", "message": "web-prod-v001: not done after 3s\n(0/3 healthy)"},
}


def test_scalar_fields_flatten_one_level_and_skip_lists() -> None:
    fields = dict(scalar_fields(RESULT))
    assert fields["instances"] == "3" and fields["rolled_back"] == "true"
    assert fields["previous_server_group"] == ""
    assert fields["error_type"] == "Timeout"
    assert "disabled_server_groups" not in fields


def test_atomic_write_replaces_the_whole_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.json"
    write_atomically(target, "old")
    before = os.stat(target).st_ino
    write_atomically(target, "new content")
    assert target.read_text() == "new content"
    assert os.stat(target).st_ino != before, "written beside and renamed over, not in place"
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]


def test_github_outputs_use_a_delimiter_for_multi_line_values(tmp_path: Path) -> None:
    path = tmp_path / "github_output"
    github_outputs(RESULT, path)
    text = path.read_text()
    assert "server_group=web-prod-v001\n" in text
    head, _, rest = text.partition("error_message<<")
    delimiter = rest.splitlines()[0]
    assert rest.splitlines()[1:3] == ["web-prod-v001: not done after 3s", "(0/3 healthy)"]
    assert rest.splitlines()[3] == delimiter


def test_dotenv_keeps_single_line_values_only(tmp_path: Path) -> None:
    path = tmp_path / "deploy.env"
    dotenv(RESULT, path)
    lines = path.read_text().splitlines()
    assert "TREADLE_SERVER_GROUP=web-prod-v001" in lines
    assert "TREADLE_ROLLED_BACK=true" in lines
    assert not any(line.startswith("TREADLE_ERROR_MESSAGE") for line in lines)


def test_publish_without_ci_variables_writes_only_the_result(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    publish(RESULT, output=str(out), dotenv_file=None, environ={})
    assert out.read_text().startswith("{\n")
