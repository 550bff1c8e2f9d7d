"""The log in each CI system: secrets masked before any line could show them, long waits
folded into sections, failures as annotations; a terminal gets plain lines."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import threading
import urllib.parse
from pathlib import Path

import ci_readers
import pytest
from helpers import treadle

from treadle.bodies import VERBOSE_BODY
from treadle.ci import check_run_key, ci_run_key
from treadle.ci_log import GitHubLog, GitLabLog, PlainLog, log_format
from treadle.console import Console, hide_user_info, redact_url
from treadle.errors import InputError

GITHUB = {"GITHUB_ACTIONS": "true"}
GITLAB = {"GITLAB_CI": "true"}
SECRET = "tok-3f9a-secret"


def console(log: PlainLog, *, quiet: bool = False) -> tuple[Console, io.StringIO]:
    stream = io.StringIO()
    return Console(stream, quiet=quiet, log=log), stream


def lines(stream: io.StringIO) -> list[str]:
    # Split on newlines only: GitLab's section markers hold a carriage return.
    return stream.getvalue().split("\n")[:-1]


@pytest.mark.parametrize(
    ("environ", "kind"),
    [
        (GITHUB, GitHubLog),
        (GITLAB, GitLabLog),
        ({}, PlainLog),
        ({"GITHUB_ACTIONS": "false"}, PlainLog),
        ({"GITLAB_CI": "false"}, PlainLog),
    ],
)
def test_the_log_format_follows_the_ci_system(environ: dict[str, str], kind: type) -> None:
    assert type(log_format(environ)) is kind


def test_github_is_told_a_secret_before_it_is_printed_even_when_quiet() -> None:
    out, stream = console(GitHubLog(), quiet=True)
    out.mask(SECRET)
    out.mask(SECRET)
    out.error(f"login with {SECRET} refused")
    assert lines(stream) == [f"::add-mask::{SECRET}", "::error::login with *** refused"]


def test_each_line_of_a_multi_line_secret_is_masked_on_its_own() -> None:
    out, stream = console(GitHubLog())
    out.mask("-----BEGIN KEY-----\nAAAA\n\n-----END KEY-----\n")
    assert lines(stream) == [
        "::add-mask::-----BEGIN KEY-----",
        "::add-mask::AAAA",
        "::add-mask::-----END KEY-----",
    ]


def test_other_logs_never_see_the_secret_itself() -> None:
    for log in (PlainLog(), GitLabLog()):
        out, stream = console(log)
        out.mask(SECRET)
        out.info(f"token {SECRET}")
        assert lines(stream) == ["token ***"]


def test_github_annotations_are_one_line_with_the_message_escaped() -> None:
    out, stream = console(GitHubLog())
    out.error("web-prod-v001 failed: 100% down\nlast lines of its log:\nboom\r")
    out.warn("cannot start web-prod-v001-2")
    assert lines(stream) == [
        "::error::web-prod-v001 failed: 100%25 down%0Alast lines of its log:%0Aboom%0D",
        "::warning::cannot start web-prod-v001-2",
    ]


def test_a_plain_log_keeps_plain_error_lines_with_the_prefix_inside() -> None:
    out, stream = console(PlainLog())
    out.child("[east] ").error("boom")
    out.warn("careful")
    assert lines(stream) == ["error: [east] boom", "warning: careful"]


def test_github_folds_a_wait_into_a_group() -> None:
    out, stream = console(GitHubLog())
    out.info("creating web-prod-v001")
    with out.section("waiting for web-prod-v001"):
        out.info("web-prod-v001: 0/2 healthy")
        out.info("web-prod-v001: 2/2 healthy")
    out.info("done")
    assert lines(stream) == [
        "creating web-prod-v001",
        "::group::waiting for web-prod-v001",
        "web-prod-v001: 0/2 healthy",
        "web-prod-v001: 2/2 healthy",
        "::endgroup::",
        "done",
    ]


def test_a_group_is_closed_when_the_wait_fails() -> None:
    out, stream = console(GitHubLog())
    with pytest.raises(RuntimeError), out.section("waiting for web-prod-v001"):
        raise RuntimeError("timeout")
    out.error("timeout")
    assert lines(stream) == [
        "::group::waiting for web-prod-v001",
        "::endgroup::",
        "::error::timeout",
    ]


def test_sections_never_nest_nor_interleave_across_regions() -> None:
    """GitHub cannot nest groups: a section opened inside another, or by another region's
    console at the same time, adds no markers."""
    out, stream = console(GitHubLog())
    east, west = out.child("[east] "), out.child("[west] ")
    inside = threading.Event()
    release = threading.Event()

    def wait_east() -> None:
        with east.section("waiting for web-v001"):
            east.info("web-v001: 0/1 healthy")
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=wait_east)
    thread.start()
    inside.wait(5)
    with west.section("waiting for web-v002"), west.section("nested"):
        west.info("web-v002: 1/1 healthy")
    release.set()
    thread.join()
    assert lines(stream) == [
        "::group::[east] waiting for web-v001",
        "[east] web-v001: 0/1 healthy",
        "[west] web-v002: 1/1 healthy",
        "::endgroup::",
    ]
    with west.section("later"):
        pass
    assert lines(stream)[-2:] == ["::group::[west] later", "::endgroup::"]


def test_quiet_adds_no_empty_sections() -> None:
    out, stream = console(GitHubLog(), quiet=True)
    with out.section("waiting for web-prod-v001"):
        out.info("web-prod-v001: 1/1 healthy")
    assert lines(stream) == []


def test_gitlab_folds_a_wait_into_a_collapsed_section() -> None:
    out, stream = console(GitLabLog())
    with out.section("waiting for web-prod-v001"):
        out.info("web-prod-v001: 1/1 healthy")
    start, inside, end = lines(stream)
    opened = re.fullmatch(
        r"\x1b\[0Ksection_start:(\d+):(treadle_\d+)\[collapsed=true\]\r\x1b\[0Kwaiting for web-prod-v001",
        start,
    )
    closed = re.fullmatch(r"\x1b\[0Ksection_end:(\d+):(treadle_\d+)\r\x1b\[0K", end)
    assert opened and closed and inside == "web-prod-v001: 1/1 healthy"
    assert opened.group(2) == closed.group(2), "the end names the section it closes"
    assert int(opened.group(1)) <= int(closed.group(1))


def test_a_plain_log_has_no_section_markers() -> None:
    out, stream = console(PlainLog())
    with out.section("waiting for web-prod-v001"):
        out.info("web-prod-v001: 1/1 healthy")
    assert lines(stream) == ["web-prod-v001: 1/1 healthy"]


# --- through the CLI ---------------------------------------------------------------------


def test_a_stage_under_github_masks_the_token_first_and_annotates_its_error() -> None:
    ran = treadle(
        "find-image", "--cluster", "web", "--token", SECRET, "--timeout", "soon", env=GITHUB
    )
    assert ran.code == 2
    assert ran.stderr.splitlines() == [
        f"::add-mask::{SECRET}",
        "::error::invalid --timeout 'soon': expected seconds or a duration like 90s, 10m, 1h",
    ]


def test_a_token_from_the_context_is_masked_as_rendered(tmp_path: Path) -> None:
    context = tmp_path / "secrets.json"
    context.write_text(json.dumps({"dcos": {"token": SECRET}}))
    ran = treadle(
        "find-image",
        "--cluster",
        "web",
        "--context",
        str(context),
        "--token",
        "{{ dcos.token }}",
        "--timeout",
        "soon",
        env=GITHUB,
    )
    log = ran.stderr.splitlines()
    masks = [line for line in log if line.startswith("::add-mask::")]
    assert f"::add-mask::{SECRET}" in masks and log[: len(masks)] == masks


def test_a_usage_error_under_github_is_annotated() -> None:
    ran = treadle("deploy", "--cluster", "web", env=GITHUB)
    assert ran.code == 2
    assert ran.stderr.startswith("::error::treadle deploy: Missing option '--image'")


# --- text treadle did not write: a job's log, a server's answer ----------------------------

JOB_LINES = [
    "::add-mask::x",
    "::set-env name=A::b",
    "  ::set-output name=status::succeeded",
    "progress ##[set-output name=a]b",
    "::stop-commands::guess",
    "::endgroup::",
]


def test_github_obeys_no_command_in_a_jobs_log_lines() -> None:
    out, stream = console(GitHubLog())
    with out.section("run 1 of job migrate"):
        out.untrusted([f"| {line}" for line in JOB_LINES])
    log = lines(stream)
    start, *inside, end = log[1:-1]
    token = start.removeprefix("::stop-commands::")
    assert start != token and end == f"::{token}::"
    assert inside == [f"| {line}" for line in JOB_LINES]
    assert ci_readers.github_commands(stream.getvalue()) == [
        ("group", "run 1 of job migrate"),
        ("stop-commands", token),
        (token, ""),
        ("endgroup", ""),
    ]


def test_the_stop_token_is_random_and_new_for_every_batch() -> None:
    log = GitHubLog()
    tokens = {log.untrusted(JOB_LINES)[0] for _ in range(20)}
    assert len(tokens) == 20
    token = next(iter(tokens)).removeprefix("::stop-commands::")
    assert re.fullmatch(r"treadle-[0-9a-f]{32}", token), "128 random bits"


def test_the_stop_token_never_occurs_in_the_batch_whatever_its_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = iter(["ab" * 16, "cd" * 16])
    monkeypatch.setattr("secrets.token_hex", lambda _: next(tokens))
    marked = GitHubLog().untrusted([f"::TREADLE-{'AB' * 16}::"])
    assert marked[0] == f"::stop-commands::treadle-{'cd' * 16}"


def test_job_lines_are_redacted_and_printed_together_and_not_when_quiet() -> None:
    out, stream = console(GitHubLog())
    out.mask(SECRET)
    out.child("[east] ").untrusted([f"| token {SECRET}", "| done"])
    assert lines(stream)[2:4] == ["[east] | token ***", "[east] | done"]
    quiet, quiet_stream = console(GitHubLog(), quiet=True)
    quiet.untrusted(["| x"])
    assert lines(quiet_stream) == []


FORGED_SECTION = "\x1b[0Ksection_end:1700000000:treadle_1\r\x1b[0K"


@pytest.mark.parametrize("log", [GitLabLog(), PlainLog()])
def test_gitlab_and_jenkins_show_a_jobs_control_characters_instead_of_obeying_them(
    log: PlainLog,
) -> None:
    out, stream = console(log)
    out.untrusted([f"| {FORGED_SECTION}", "| \x1b[8mha:AAAA\x1b[0mforged", "| a\tb\x00\x7f\x9b"])
    assert lines(stream) == [
        "| ^[[0Ksection_end:1700000000:treadle_1^M^[[0K",
        "| ^[[8mha:AAAA^[[0mforged",
        "| a\tb^@^?\\x9b",
    ]


def test_gitlab_section_markers_are_only_treadles_own() -> None:
    out, stream = console(GitLabLog())
    with out.section(f"waiting {FORGED_SECTION}"):
        out.untrusted([FORGED_SECTION])
        out.info(f"server said: {FORGED_SECTION}")
        out.warn(f"server said: {FORGED_SECTION}")
        out.error(f"server said: {FORGED_SECTION}")
    sections = ci_readers.GITLAB_SECTION.findall(stream.getvalue())
    assert [(action, name) for action, _, name, _ in sections] == [
        ("start", "treadle_1"),
        ("end", "treadle_1"),
    ]


SERVER_TEXT = (
    "409 from server:\n::add-mask::x\r::set-output name=a::b\n  ::error::c ##[set-env name=A]d"
)


def test_github_obeys_no_command_quoted_in_treadles_own_lines() -> None:
    out, stream = console(GitHubLog())
    out.info(SERVER_TEXT)
    out.child("").info("::set-output name=status::succeeded")
    with out.section(f"waiting\n{SERVER_TEXT}"):
        out.warn(SERVER_TEXT)
    out.error(SERVER_TEXT)
    out.raw(json.dumps({"spec": "##[add-mask]x", "cmd": ["::add-mask::y"]}, indent=2))
    obeyed = [name for name, _ in ci_readers.github_commands(stream.getvalue())]
    assert obeyed == ["group", "warning", "endgroup", "error"]
    assert lines(stream)[:5] == [
        "409 from server:",
        ": :add-mask::x",
        ": :set-output name=a::b",
        "  : :error::c ## [set-env name=A]d",
        ": :set-output name=status::succeeded",
    ]


def test_a_run_key_is_short_and_plain() -> None:
    assert check_run_key("github-123-deploy_1.2") == "github-123-deploy_1.2"
    for bad in ["", "a" * 64, "a b", "x\n::add-mask::y", "käse", "a/b"]:
        with pytest.raises(InputError) as raised:
            check_run_key(bad)
        assert "\n" not in str(raised.value) and raised.value.exit_code == 2
    environ = {"GITHUB_RUN_ID": "1", "GITHUB_JOB": "deploy\n::add-mask::x" + "y" * 80}
    key = ci_run_key(environ)
    assert key is not None and check_run_key(key) == key


# --- secrets in every form a server may answer them back in --------------------------------


def test_a_basic_credential_is_masked_as_a_server_echoes_it() -> None:
    out, stream = console(GitHubLog())
    out.mask_basic("deployer", "pa55word")
    token = base64.b64encode(b"deployer:pa55word").decode()
    masks = lines(stream)
    assert masks == [
        "::add-mask::pa55word",
        "::add-mask::deployer:pa55word",
        f"::add-mask::{token}",
        f"::add-mask::Basic {token}",
    ]
    out.error(f'401: {{"headers": {{"Authorization": "Basic {token}"}}}} (raw {token})')
    assert lines(stream)[-1] == '::error::401: {"headers": {"Authorization": "***"}} (raw ***)'


def test_a_secret_is_masked_url_encoded_and_json_escaped() -> None:
    secret = 'p@ss/w"rd+é x'
    out, stream = console(PlainLog())
    out.mask(secret)
    for form in [
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(secret)[1:-1].replace("/", "\\/"),
    ]:
        out.info(f"echo {form} end")
    assert lines(stream) == ["echo *** end"] * 5


def test_a_secret_is_masked_as_other_servers_escape_and_encode_it() -> None:
    """HTML-escaped (an error page), JSON-escaped as Go's encoder does (the Docker engine),
    percent-encoded with lower-case hex digits, and in base64."""
    secret = "p&ss<w>rd/1+Tok"
    out, stream = console(PlainLog())
    out.mask(secret)
    for form in [
        html.escape(secret),
        html.escape(secret, quote=False),
        json.dumps(secret)[1:-1]
        .replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e"),
        re.sub("%[0-9A-F]{2}", lambda m: m[0].lower(), urllib.parse.quote(secret, safe="")),
        base64.b64encode(secret.encode()).decode(),
    ]:
        out.info(f"echo {form} end")
    assert lines(stream) == ["echo *** end"] * 5


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("http://alice:pa'ssw0rdX@marathon.example:8080", "pa'ssw0rdX"),
        ('http://alice:pa"ssw0rdX@marathon.example:8080', 'pa"ssw0rdX'),
        ("http://alice:pa/ss#w0rdX@marathon.example:8080", "pa/ss#w0rdX"),
    ],
)
def test_a_urls_password_is_masked_whatever_characters_it_holds(url: str, password: str) -> None:
    """A person may type characters a URL should encode: the password is still a secret,
    and a message quoting the URL as given shows none of its user info."""
    out, stream = console(PlainLog())
    out.mask_url(url)
    out.info(f"cannot reach {url}; the password {password} was refused")
    assert password not in lines(stream)[-1]
    assert hide_user_info(url) == "http://***@marathon.example:8080"


def test_verbose_masks_a_secret_before_it_cuts_a_body() -> None:
    """Cut first, a secret across the cut would show all but its last characters."""
    stream = io.StringIO()
    out = Console(stream, log=PlainLog(), verbose=True)
    secret = "TOPSECRETTOKEN0123456789abcdefghijklmnopqrstuvwxyz"
    out.mask(secret)
    body = "x" * (VERBOSE_BODY - 20) + f" token={secret} " + "y" * 100
    out.http_response("GET", "http://h/v2/apps", 401, 0.01, body.encode(), content_type="text")
    shown = stream.getvalue()
    assert "token=***" in shown and "TOPSECRET" not in shown


def test_a_secret_too_short_to_be_a_credential_is_not_masked() -> None:
    out, stream = console(GitHubLog())
    out.mask("abc")
    out.info("abc")
    assert lines(stream) == ["abc"]


URL = "http://deployer:p%40ss@marathon.example:8080/v2/apps"


def test_a_url_never_shows_its_password() -> None:
    assert redact_url(URL) == "http://deployer:***@marathon.example:8080/v2/apps"
    assert redact_url("https://TOKEN123@github.com/o/r") == "https://***@github.com/o/r"
    assert (
        redact_url("at http://u:p@ss@h/x and http://h/a@b")
        == "at http://u:***@h/x and http://h/a@b"
    )
    out, stream = console(PlainLog())
    out.info(f"cannot reach {URL.replace('p%40ss', 'unregistered')}")
    assert lines(stream) == ["cannot reach http://deployer:***@marathon.example:8080/v2/apps"]


def test_a_urls_credential_is_masked_everywhere_and_in_the_result_tree() -> None:
    out, stream = console(GitHubLog())
    out.mask_url(URL)
    token = base64.b64encode(b"deployer:p@ss").decode()
    assert {"::add-mask::p%40ss", "::add-mask::p@ss", f"::add-mask::{token}"} <= set(lines(stream))
    result = {
        "stage": "deploy",
        "marathon": URL,
        "error": {"type": "ProviderError", "message": f"401 Basic {token}: bad p@ss"},
        "outputs": {f"key-{token}": ["p%40ss", 3, None, True]},
    }
    redacted = out.redact_tree(result)
    assert redacted == {
        "stage": "deploy",
        "marathon": "http://***@marathon.example:8080/v2/apps",  # user:password masked whole
        "error": {"type": "ProviderError", "message": "401 ***: bad ***"},
        "outputs": {"key-***": ["***", 3, None, True]},
    }
    assert result["marathon"] == URL, "the tree given is left as it was"
    out.info(f"GET {URL} sent Authorization: Basic {token}")
    assert (
        lines(stream)[-1] == "GET http://***@marathon.example:8080/v2/apps sent Authorization: ***"
    )


def test_json_lines_keep_githubs_masks_and_leave_out_its_other_markup() -> None:
    stream = io.StringIO()
    out = Console(stream, log=GitHubLog(), json=True, stage="deploy").child("[/a] ", region="/a")
    out.mask(SECRET)
    with out.section("waiting for web-v001"):
        out.info("web-v001: 1/2 healthy", instances=2)
        out.untrusted(["::set-output name=x::1", f"uses {SECRET}"], stream="stderr")
    out.warn("slow ##[warning]")
    out.error("web-v001 failed\nlast lines")
    raw = lines(stream)
    assert raw[0] == f"::add-mask::{SECRET}"
    records = [json.loads(line) for line in raw[1:]]
    assert [(r["level"], r["message"], r["fields"]) for r in records] == [
        (
            "info",
            "web-v001: 1/2 healthy",
            {"section": "[/a] waiting for web-v001", "region": "/a", "instances": 2},
        ),
        (
            "info",
            "::set-output name=x::1",
            {"section": "[/a] waiting for web-v001", "region": "/a", "stream": "stderr"},
        ),
        (
            "info",
            "uses ***",
            {"section": "[/a] waiting for web-v001", "region": "/a", "stream": "stderr"},
        ),
        ("warning", "slow ##[warning]", {"region": "/a"}),
        ("error", "web-v001 failed\nlast lines", {"region": "/a"}),
    ]
    assert all(r["stage"] == "deploy" for r in records)
    # Nothing the runner would obey: each line is one JSON object, `##[` written escaped.
    assert all(line.startswith("{") and "##[" not in line for line in raw[1:])
