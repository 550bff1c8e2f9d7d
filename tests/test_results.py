"""Results reach the next step whole: atomic files, GitHub outputs, GitLab dotenv."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import ci_readers
import pytest

from treadle.ci import (
    DOTENV_MAX_BYTES,
    DOTENV_MAX_VARIABLES,
    dotenv,
    environment_url,
    forget_result_variables,
    github_outputs,
    github_summary,
    scalar_fields,
)
from treadle.errors import InputError
from treadle.results import check_destination, publish, write_atomically

SRC_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}

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


# --- where a result goes: never over what is not a result file -----------------------------


def test_a_device_is_written_in_place_and_a_full_one_reports_its_error() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    before = os.stat("/dev/full")
    with pytest.raises(OSError) as raised:
        write_atomically(Path("/dev/full"), "{}\n")
    assert raised.value.errno == errno.ENOSPC
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    write_atomically(Path("/dev/null"), "{}\n")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "result.fifo"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_atomically(fifo, "whole result\n")
    reader.join(5)
    assert received == ["whole result\n"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["result.fifo"], "no temporary left"


def test_a_pipe_named_by_dev_fd_is_written_through_the_descriptor() -> None:
    read_end, write_end = os.pipe()
    try:
        write_atomically(Path(f"/dev/fd/{write_end}"), "through the pipe\n")
        os.close(write_end)
        with os.fdopen(read_end) as f:
            assert f.read() == "through the pipe\n"
    finally:
        with contextlib.suppress(OSError):
            os.close(write_end)


def test_dev_stdout_keeps_what_the_shell_appended_before(tmp_path: Path) -> None:
    """`treadle ... --output /dev/stdout >> log 2>&1`: the result joins the log, which is
    neither truncated nor replaced."""
    log = tmp_path / "log"
    log.write_text("earlier step\n")
    code = "from pathlib import Path; from treadle.results import write_atomically; "
    code += "write_atomically(Path('/dev/stdout'), 'result\\n')"
    with log.open("a") as out:
        subprocess.run([sys.executable, "-c", code], stdout=out, check=True, env=SRC_ENV)
    assert log.read_text() == "earlier step\nresult\n"


def test_a_symlink_stays_and_the_file_it_names_is_replaced_keeping_its_mode(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real.json"
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "result.json"
    link.symlink_to("real.json")
    before = os.stat(real).st_ino
    write_atomically(link, "new")
    assert link.is_symlink() and os.readlink(link) == "real.json"
    assert real.read_text() == "new" and os.stat(real).st_ino != before
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600


def test_a_dangling_symlink_creates_the_file_it_names(tmp_path: Path) -> None:
    link = tmp_path / "result.json"
    link.symlink_to("results/deploy.json")
    write_atomically(link, "{}")
    assert link.is_symlink() and (tmp_path / "results" / "deploy.json").read_text() == "{}"


def test_a_new_file_is_readable_by_later_steps_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_atomically(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "r.json").st_mode) == 0o644


def test_a_read_only_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("kept")
    path.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only"):
        write_atomically(path, "new")
    assert path.read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_a_folder_is_not_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "results"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        write_atomically(folder, "{}")
    assert (folder / "inside").is_dir()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_another_users_file_keeps_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")
    os.chown(path, 65534, 65534)
    write_atomically(path, "new")
    assert path.read_text() == "new"
    assert (os.stat(path).st_uid, os.stat(path).st_gid) == (65534, 65534)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any folder")
def test_a_folder_we_cannot_write_in_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        with pytest.raises(InputError, match="cannot write in"):
            check_destination(str(locked / "r.json"), "--output")
        with pytest.raises(PermissionError):
            write_atomically(locked / "r.json", "{}")
    finally:
        locked.chmod(0o755)


def _read_only(tmp_path: Path) -> str:
    (tmp_path / "ro.json").write_text("")
    (tmp_path / "ro.json").chmod(0o444)
    return "ro.json"


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "file").write_text("")
    return "file/r.json"


def _a_folder(tmp_path: Path) -> str:
    (tmp_path / "results").mkdir()
    return "results"


def _a_link_loop(tmp_path: Path) -> str:
    (tmp_path / "loop").symlink_to("loop")
    return "loop"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (_read_only, "ro.json: is read-only"),
        (_under_a_file, "file is not a folder"),
        (_a_folder, "results: is a folder"),
        (_a_link_loop, "loop: Too many levels of symbolic links"),
        (lambda _: "/dev/fd/987", "/dev/fd/987: file descriptor 987 is not open"),
    ],
)
def test_check_destination_refuses_with_one_line_naming_flag_and_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[[Path], str], why: str
) -> None:
    monkeypatch.chdir(tmp_path)
    path = make(tmp_path)
    with pytest.raises(InputError) as raised:
        check_destination(path, "--dotenv")
    message = str(raised.value)
    assert message.startswith(f"--dotenv {path}: ") and why in message
    assert "\n" not in message and raised.value.exit_code == 2


def test_check_destination_accepts_what_can_be_written_and_changes_nothing(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # with no reader: not opened, so not waited for
    (tmp_path / "old.json").write_text("old")
    (tmp_path / "link.json").symlink_to("old.json")
    (tmp_path / "dangling.json").symlink_to("missing/r.json")
    before = sorted(p.name for p in tmp_path.iterdir())
    for path in [
        tmp_path / "new" / "deep" / "r.json",
        tmp_path / "old.json",
        tmp_path / "link.json",
        tmp_path / "dangling.json",
        fifo,
        Path("/dev/null"),
        Path("/dev/stderr"),
    ]:
        check_destination(str(path), "--output")
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "old.json").read_text() == "old"


# --- what a job's outputs can and cannot do to the CI system -------------------------------

HOSTILE = {
    "stage": "run-job",
    "status": "failed",
    "outputs": {
        "x\nstatus": "succeeded",
        "a<<EOF": "b",
        "k=v": "w",
        "": "no name",
        "notes": "line 1\nEOF\ntreadle_0\nstatus=succeeded",
    },
}


def test_github_outputs_cannot_be_added_by_a_jobs_output_names_or_values(
    tmp_path: Path,
) -> None:
    path = tmp_path / "github_output"
    github_outputs(HOSTILE, path)
    outputs = ci_readers.github_outputs(path.read_text())
    names = [name for name, _ in outputs]
    assert names == [
        "stage",
        "status",
        "outputs_x_status",
        "outputs_a__EOF",
        "outputs_k_v",
        "outputs_",
        "outputs_notes",
        "result",
    ]
    assert dict(outputs)["status"] == "failed"
    assert dict(outputs)["outputs_notes"] == HOSTILE["outputs"]["notes"]  # type: ignore[index]
    assert json.loads(dict(outputs)["result"]) == HOSTILE


def test_the_heredoc_delimiter_is_never_text_the_value_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = iter(["0" * 32, "1" * 32])
    monkeypatch.setattr("secrets.token_hex", lambda _: next(tokens))
    value = f"a job that guessed\ntreadle_{'0' * 32}\nstatus=succeeded"
    path = tmp_path / "github_output"
    github_outputs({"status": "failed", "outputs": {"log": value}}, path)
    assert f"outputs_log<<treadle_{'1' * 32}\n" in path.read_text()
    assert dict(ci_readers.github_outputs(path.read_text()))["outputs_log"] == value


def test_a_carriage_return_also_takes_the_delimited_form(tmp_path: Path) -> None:
    """A Windows runner breaks lines at CRLF: a value with `\\r` is delimited too."""
    path = tmp_path / "github_output"
    github_outputs({"outputs": {"v": "a\r"}}, path)
    assert path.read_text().startswith("outputs_v<<treadle_")


def test_dotenv_names_cannot_be_chosen_by_a_job(tmp_path: Path) -> None:
    path = tmp_path / "job.env"
    dotenv(HOSTILE, path)
    lines = path.read_text().splitlines()
    names = [line.split("=", 1)[0] for line in lines]
    assert names.count("TREADLE_STATUS") == 1 and "TREADLE_STATUS=failed" in lines
    assert "TREADLE_OUTPUTS_X_STATUS=succeeded" in lines
    assert "TREADLE_OUTPUTS_A__EOF=b" in lines and "TREADLE_OUTPUTS_K_V=w" in lines
    assert all(re.fullmatch(r"[A-Z0-9_]+", name) for name in names)


def test_the_summary_table_keeps_its_rows_whatever_the_output_names(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    github_summary({"stage": "run-job", "status": "failed", "outputs": {"a|b\n# x": "v"}}, path)
    rows = [line for line in path.read_text().splitlines() if line.startswith("|")]
    assert rows[-1] == "| outputs_a_b___x | `v` |"
    assert not [line for line in path.read_text().splitlines() if line.startswith("#")][1:]


# --- where the result's server group answers, and who made what ---------------------------

DEPLOYED = {
    "stage": "find-image",
    "status": "succeeded",
    "server_group": "web-prod-v004",
    "created_at": "2025-01-02T03:04:05.000Z",
    "deployed": {"ci": "gitlab", "run_url": "https://gitlab.example/-/jobs/9", "actor": "alice"},
    "endpoints": ["10.0.0.7:31002", "10.0.0.8:31002"],
    "provenance": {"ci": "github", "run_url": "https://github.com/a/b/actions/runs/1"},
}


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({"endpoints": ["127.0.0.1:32768", "127.0.0.1:32769"]}, "http://127.0.0.1:32768"),
        ({"endpoints": ["https://web.example:8443"]}, "https://web.example:8443"),
        ({"url": "https://web.example/health", "endpoints": ["h:1"]}, "https://web.example/health"),
        ({"endpoints": []}, None),
        ({}, None),
    ],
)
def test_the_environment_url_is_the_url_else_the_first_endpoint(
    fields: dict[str, object], url: str | None
) -> None:
    assert environment_url(fields) == url


def test_outputs_carry_the_environment_url_and_who_deployed_but_not_this_runs_provenance(
    tmp_path: Path,
) -> None:
    path = tmp_path / "github_output"
    github_outputs(DEPLOYED, path)
    lines = path.read_text().splitlines()
    assert "environment_url=http://10.0.0.7:31002" in lines
    assert (
        "deployed_actor=alice" in lines
        and "deployed_run_url=https://gitlab.example/-/jobs/9" in lines
    )
    assert not [line for line in lines if line.startswith("provenance_")]
    assert json.loads(lines[-1].removeprefix("result="))["provenance"]["ci"] == "github"


def test_dotenv_carries_the_environment_url_and_leaves_provenance_to_the_json(
    tmp_path: Path,
) -> None:
    path = tmp_path / "r.env"
    assert dotenv(DEPLOYED, path) == [], "nothing left out that would be warned about"
    lines = path.read_text().splitlines()
    assert "TREADLE_ENVIRONMENT_URL=http://10.0.0.7:31002" in lines
    assert not [line for line in lines if line.startswith(("TREADLE_DEPLOYED", "TREADLE_PROV"))]


def test_the_summary_is_a_table_with_a_table_per_list_of_objects(tmp_path: Path) -> None:
    path = tmp_path / "summary.md"
    result = {
        "stage": "deploy",
        "status": "succeeded",
        "server_group": "web-prod-v004",
        "endpoints": ["127.0.0.1:32768"],
        "provenance": {"actor": "octocat"},
        "regions": [
            {"region": "/eu", "server_group": "web-prod-v004", "instances": 2},
            {"region": "/us", "server_group": "web-prod-v002", "rolled_back": True},
        ],
    }
    github_summary(result, path)
    text = path.read_text()
    assert "| server_group | `web-prod-v004` |" in text
    assert "| environment_url | `http://127.0.0.1:32768` |" in text
    assert "octocat" not in text, "the run's own provenance is the run page's"
    assert (
        "**regions**\n\n"
        "| region | server_group | instances | rolled_back |\n"
        "|---|---|---|---|\n"
        "| `/eu` | `web-prod-v004` | `2` |  |\n"
        "| `/us` | `web-prod-v002` |  | `true` |\n"
    ) in text
