"""Results reach the next step whole: atomic files, GitHub outputs, GitLab dotenv."""

from __future__ import annotations

import os
from pathlib import Path

from treadle.ci import (
    DOTENV_MAX_BYTES,
    DOTENV_MAX_VARIABLES,
    dotenv,
    forget_result_variables,
    github_outputs,
    github_summary,
    scalar_fields,
)
from treadle.results import publish, write_atomically

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


def test_dotenv_stays_within_gitlabs_limits_and_names_what_it_left_out(tmp_path: Path) -> None:
    path = tmp_path / "job.env"
    outputs = {f"key{i}": "x" for i in range(30)}
    error = {"type": "StageFailed", "message": "exit code 1"}
    left_out = dotenv({"stage": "run-job", "outputs": outputs, "error": error}, path)
    lines = path.read_text().splitlines()
    assert len(lines) == DOTENV_MAX_VARIABLES
    assert lines[:4] == [
        "TREADLE_STAGE=run-job",
        "TREADLE_ERROR_TYPE=StageFailed",
        "TREADLE_ERROR_MESSAGE=exit code 1",
        "TREADLE_OUTPUTS_KEY0=x",
    ], "the job's own outputs go last"
    assert lines[-1].startswith(
        "TREADLE_RESULT_VARIABLES=STAGE ERROR_TYPE ERROR_MESSAGE OUTPUTS_KEY0 "
    )
    assert left_out == [f"TREADLE_OUTPUTS_KEY{i}" for i in range(16, 30)]


def test_dotenv_leaves_out_a_value_that_would_pass_gitlabs_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "job.env"
    result = {"stage": "run-job", "outputs": {"big": "x" * DOTENV_MAX_BYTES, "small": "y"}}
    assert dotenv(result, path) == ["TREADLE_OUTPUTS_BIG"]
    assert path.read_text() == (
        "TREADLE_STAGE=run-job\nTREADLE_OUTPUTS_SMALL=y\nTREADLE_RESULT_VARIABLES=STAGE OUTPUTS_SMALL\n"
    )
    assert len(path.read_bytes()) <= DOTENV_MAX_BYTES


def test_dotenv_names_are_letters_digits_and_underscores(tmp_path: Path) -> None:
    path = tmp_path / "job.env"
    dotenv({"outputs": {"app.version": "1.2", "db-host": "db"}}, path)
    assert path.read_text().splitlines()[:2] == [
        "TREADLE_OUTPUTS_APP_VERSION=1.2",
        "TREADLE_OUTPUTS_DB_HOST=db",
    ]


def test_a_later_stage_does_not_read_an_earlier_stages_results_as_its_options(
    tmp_path: Path,
) -> None:
    """GitLab hands a find-image job's dotenv to the next job: TREADLE_SERVER_GROUP and
    TREADLE_DRY_RUN there are results, and must not select or dry-run anything."""
    path = tmp_path / "image.env"
    dotenv({"stage": "deploy", "server_group": "web-v001", "dry_run": True, "image": "web:1"}, path)
    environ = dict(line.split("=", 1) for line in path.read_text().splitlines())
    environ["TREADLE_TIMEOUT"] = "5m"
    forget_result_variables(environ)
    assert environ == {"TREADLE_TIMEOUT": "5m"}


def test_publish_warns_about_fields_the_dotenv_left_out(tmp_path: Path) -> None:
    warnings: list[str] = []
    publish(
        RESULT,
        output=str(tmp_path / "r.json"),
        dotenv_file=str(tmp_path / "r.env"),
        environ={},
        warn=warnings.append,
    )
    assert len(warnings) == 1 and "TREADLE_ERROR_MESSAGE" in warnings[0]


def test_github_summary_keeps_the_table_whole_and_the_error_below_it(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    github_summary({**RESULT, "image": "registry.example/web|x:1"}, path)
    text = path.read_text()
    assert text.startswith("### ❌ treadle deploy: failed\n")
    assert "| disabled_server_groups | `web-prod-v000` |" in text
    assert "| image | `registry.example/web\\|x:1` |" in text
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert not [line for line in table if "error" in line], "the error is not a table row"
    assert "**Timeout**\n\n```text\nweb-prod-v001: not done after 3s\n(0/3 healthy)\n```\n" in text
