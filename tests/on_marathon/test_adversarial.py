"""Bad input, generated: whatever a user types wrong ends in exit 2 with one line, never a
traceback, and Marathon receives no mutating request. And secrets never leak."""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator import MarathonEmulator, ServiceAccount, Token
from helpers import Outcome, treadle
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from treadle.providers.marathon.apps import APP_FIELDS
from treadle.stages.strategies import STRATEGIES

from .conftest import FAST
from .test_connection import rsa_key

SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def marathon() -> Iterator[MarathonEmulator]:
    with MarathonEmulator(**FAST) as emu:
        emu.add_app(
            {
                "id": "/web-prod-v000",
                "instances": 1,
                "container": {"type": "DOCKER", "docker": {"image": "web:1"}},
            }
        )
        yield emu


def assert_refused_cleanly(outcome: Outcome, marathon: MarathonEmulator, before: int) -> None:
    assert outcome.code == 2, outcome
    assert "Traceback" not in outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1, outcome.stderr
    assert marathon.mutating_requests()[before:] == []


bad_name = st.text(alphabet=string.printable, min_size=1, max_size=30).filter(
    lambda s: not s.isalnum() or s != s.lower() or not s.isascii()
)


@SETTINGS
@given(app=bad_name)
def test_any_invalid_application_name(marathon: MarathonEmulator, app: str) -> None:
    before = len(marathon.mutating_requests())
    outcome = treadle("deploy", "--app", app, "--image", "web:2", "--marathon-url", marathon.url)
    assert_refused_cleanly(outcome, marathon, before)


@SETTINGS
@given(strategy=st.text(max_size=30).filter(lambda s: s not in STRATEGIES and "\x00" not in s))
def test_any_unknown_strategy(marathon: MarathonEmulator, strategy: str) -> None:
    before = len(marathon.mutating_requests())
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--strategy",
        strategy,
        "--marathon-url",
        marathon.url,
    )
    assert_refused_cleanly(outcome, marathon, before)


@SETTINGS
@given(
    steps=st.lists(st.integers(min_value=-50, max_value=250), max_size=5).filter(
        lambda s: not s or s != sorted(set(s)) or s[0] <= 0 or s[-1] != 100
    )
)
def test_any_invalid_rolling_steps(marathon: MarathonEmulator, steps: list[int]) -> None:
    before = len(marathon.mutating_requests())
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--strategy",
        "rolling-red-black",
        "--steps",
        ",".join(map(str, steps)) or ",",
        "--marathon-url",
        marathon.url,
    )
    assert_refused_cleanly(outcome, marathon, before)


@SETTINGS
@given(content=st.binary(max_size=2000))
def test_any_context_file_without_the_value(
    marathon: MarathonEmulator, tmp_path_factory, content: bytes
) -> None:
    """Truncated, binary, non-UTF-8, wrong types: the file is refused, or the placeholder
    finds nothing in it; either way exit 2 and nothing sent."""
    path = tmp_path_factory.mktemp("ctx") / "context.json"
    path.write_bytes(content)
    before = len(marathon.mutating_requests())
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:{{ build.treadle_version_42 }}",
        "--context",
        str(path),
        "--marathon-url",
        marathon.url,
    )
    assert_refused_cleanly(outcome, marathon, before)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@SETTINGS
@given(
    spec=st.dictionaries(
        st.text(min_size=1, max_size=12).filter(lambda k: k not in APP_FIELDS),
        json_values,
        min_size=1,
        max_size=4,
    )
)
def test_any_spec_with_fields_marathon_does_not_know(
    marathon: MarathonEmulator, tmp_path_factory, spec
) -> None:
    path = tmp_path_factory.mktemp("spec") / "app.json"
    path.write_text(json.dumps(spec))
    before = len(marathon.mutating_requests())
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:2",
        "--spec",
        str(path),
        "--marathon-url",
        marathon.url,
    )
    assert_refused_cleanly(outcome, marathon, before)


@SETTINGS
@given(
    url=st.text(max_size=40).filter(
        lambda u: not u.startswith(("http://", "https://")) and "\x00" not in u
    )
)
def test_any_url_that_is_not_http(marathon: MarathonEmulator, url: str) -> None:
    before = len(marathon.mutating_requests())
    outcome = treadle("destroy", "--server-group", "web-prod-v000", "--marathon-url", url or " ")
    assert_refused_cleanly(outcome, marathon, before)


# --- secrets ------------------------------------------------------------------------------

TOKEN = "tok-3f9a7c21e6b84d0f"
PASSWORD = "pw-9c1e77ab42"


def everything_written(outcome: Outcome, folder: Path) -> str:
    files = "".join(p.read_text(errors="replace") for p in folder.iterdir() if p.is_file())
    return outcome.stdout + outcome.stderr + files


@pytest.mark.parametrize("accepted", [True, False])
def test_tokens_never_appear_in_logs_results_or_ci_files(tmp_path: Path, accepted: bool) -> None:
    with MarathonEmulator(
        auth=Token(TOKEN if accepted else "another-token"), admin_router=True, **FAST
    ) as emu:
        env = {
            "GITHUB_OUTPUT": str(tmp_path / "gh_out"),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary"),
            "DCOS_ACS_TOKEN": TOKEN,
        }
        for args in (
            ["deploy", "--app", "web", "--image", "web:1", "--timeout", "5s"],
            ["find-image", "--cluster", "web"],
            ["resize", "--server-group", "web-v000", "--instances", "2"],
        ):
            outcome = treadle(
                *args,
                "--dcos-url",
                emu.dcos_url,
                "--output",
                str(tmp_path / "r.json"),
                "--dotenv",
                str(tmp_path / "r.env"),
                env=env,
            )
            assert outcome.code == (0 if accepted else 4), outcome
            assert TOKEN not in everything_written(outcome, tmp_path)


def test_passwords_and_keys_never_appear(tmp_path: Path) -> None:
    key, _ = rsa_key(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_public = rsa_key(tmp_path / "other")
    key_text = key.read_text()
    secret_line = key_text.splitlines()[3]
    with MarathonEmulator(
        auth=ServiceAccount(uid="ci", public_key_pem=other_public), **FAST
    ) as emu:
        refused = treadle(
            "find-image",
            "--cluster",
            "web",
            "--dcos-url",
            emu.dcos_url,
            "--service-account-uid",
            "ci",
            "--service-account-key",
            str(key),
            "--output",
            str(tmp_path / "r.json"),
        )
    assert refused.code == 4
    basic = treadle(
        "find-image",
        "--cluster",
        "web",
        "--marathon-url",
        "http://127.0.0.1:9",
        "--username",
        "ci",
        "--password",
        PASSWORD,
        "--output",
        str(tmp_path / "b.json"),
    )
    assert basic.code == 4
    written = everything_written(refused, tmp_path) + everything_written(basic, tmp_path)
    assert secret_line not in written.replace(key_text, "")
    assert PASSWORD not in written
