"""Secrets never appear in anything treadle prints or writes, whatever a server echoes:
HTTP basic credentials (and their base64 form in an Authorization header), a password in
a URL's user info, a token; in stderr, the result, GitHub's outputs and step summary and
GitLab's dotenv file."""

from __future__ import annotations

import base64
import urllib.parse
from pathlib import Path

import pytest
from emulator import Basic, MarathonEmulator, Request, Response, Token
from helpers import Outcome, treadle

from .conftest import FAST

PASSWORD = "pa55-w0rd-9f2c"
TOKEN = "tok-echoed-3b7e19"


def echoing(request: Request) -> Response | None:
    """A proxy that answers the server group's create with an error page quoting every
    header it got, the Authorization header included."""
    body = isinstance(request.body, dict) and request.body.get("id", "").endswith("-v000")
    if request.method == "POST" and body:
        headers = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        return Response(500, {"message": f"upstream failed for request with {headers}"})
    return None


def everything(outcome: Outcome, tmp_path: Path) -> str:
    """All treadle printed and wrote, but the mask commands: the GitHub runner reads those
    and shows nothing of them."""
    files = [p.read_text() for p in tmp_path.iterdir() if p.is_file()]
    text = "\n".join([outcome.stdout, outcome.stderr, *files])
    return "\n".join(line for line in text.splitlines() if not line.startswith("::add-mask::"))


def run(url: str, tmp_path: Path, *auth: str) -> Outcome:
    github = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "github_output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
    }
    return treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:1",
        "--timeout",
        "3s",
        "--marathon-url",
        url,
        *auth,
        "--output",
        str(tmp_path / "result.json"),
        "--dotenv",
        str(tmp_path / "deploy.env"),
        env=github,
    )


def forms(secret: str) -> list[str]:
    return [secret, urllib.parse.quote(secret, safe="")]


@pytest.mark.parametrize("how", ["flags", "url"])
def test_basic_credentials_echoed_back_are_masked_everywhere(tmp_path: Path, how: str) -> None:
    with MarathonEmulator(auth=Basic("ci", PASSWORD), **FAST) as marathon:
        marathon.faults.append(echoing)
        if how == "flags":
            outcome = run(marathon.url, tmp_path, "--username", "ci", "--password", PASSWORD)
        else:
            url = marathon.url.replace("http://", f"http://ci:{PASSWORD}@")
            outcome = run(url, tmp_path)
    assert outcome.code == 1, outcome
    text = everything(outcome, tmp_path)
    assert "upstream failed for request with" in text
    encoded = base64.b64encode(f"ci:{PASSWORD}".encode()).decode()
    for leak in [*forms(PASSWORD), encoded]:
        assert leak not in text, f"{leak!r} leaked"


def test_a_token_echoed_back_is_masked_everywhere(tmp_path: Path) -> None:
    with MarathonEmulator(auth=Token(TOKEN), **FAST) as marathon:
        marathon.faults.append(echoing)
        outcome = run(marathon.url, tmp_path, "--token", TOKEN)
    assert outcome.code == 1, outcome
    text = everything(outcome, tmp_path)
    assert "authorization: ***" in text.lower() or "token=***" in text
    for leak in forms(TOKEN):
        assert leak not in text


# --- secrets given in a definition, and secrets given the wrong way ------------------------

ENV_SECRET = "EnvSecretValue42"


def quoting_env(request: Request) -> Response | None:
    """A Marathon that rejects the server group's create quoting its environment back,
    as a 422's details do."""
    env = isinstance(request.body, dict) and request.body.get("env")
    if request.method == "POST" and env:
        quoted = [f"/env({k}): {v} is not a valid value" for k, v in env.items()]
        return Response(
            422, {"message": "Object is not valid", "details": [{"path": "/", "errors": quoted}]}
        )
    return None


def test_a_secret_environment_value_is_never_printed_however_it_comes_back(
    tmp_path: Path,
) -> None:
    """A variable named as a secret (PASSWORD, TOKEN, KEY, ...) is masked wherever its value
    appears: in a server's error, in a dry run's definition, in every file written."""
    (tmp_path / "in").mkdir()
    spec = tmp_path / "in" / "app.json"
    spec.write_text(f'{{"env": {{"DB_PASSWORD": "{ENV_SECRET}", "PLAIN": "visible-value"}}}}')
    with MarathonEmulator(**FAST) as marathon:
        marathon.faults.append(quoting_env)
        deploy = ("deploy", "--app", "web", "--image", "web:1", "--spec", str(spec))
        at = ("--marathon-url", marathon.url)
        rejected = treadle(
            *deploy,
            *at,
            "--output",
            str(tmp_path / "result.json"),
            "--dotenv",
            str(tmp_path / "deploy.env"),
            "--verbose",
            env={"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(tmp_path / "github_output")},
        )
        planned = treadle(*deploy, *at, "--dry-run")
    assert rejected.code == 2 and "/env(PLAIN): visible-value" in rejected.stderr, rejected
    assert ENV_SECRET not in everything(rejected, tmp_path)
    assert planned.code == 0 and '"DB_PASSWORD": "***"' in planned.stderr + planned.stdout
    assert ENV_SECRET not in planned.stderr + planned.stdout


def test_a_private_key_given_in_place_of_its_path_is_never_quoted(tmp_path: Path) -> None:
    key = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAsecretbits\n-----END RSA PRIVATE KEY-----"
    )
    outcome = treadle(
        "find-image",
        "--cluster",
        "web-prod",
        "--marathon-url",
        "http://127.0.0.1:1",
        "--service-account-uid",
        "deployer",
        env={"TREADLE_SERVICE_ACCOUNT_KEY": key},
    )
    assert outcome.code == 2, outcome
    assert "path of the key's PEM file" in outcome.stderr
    assert "secretbits" not in outcome.stderr + outcome.stdout


@pytest.mark.parametrize(
    "url",
    [
        "http://ci:pa/ss0rdX@127.0.0.1:1",
        "https://ci:Xy[ss0rdX]@127.0.0.1:1",
        "https://ci:s3cr#ss0rdX:99@127.0.0.1:1",
        "https://ci:ss0rdX@127.0.0.1:99999",
    ],
)
def test_a_url_with_a_password_it_cannot_hold_is_refused_without_quoting_it(url: str) -> None:
    outcome = treadle("find-image", "--cluster", "web-prod", "--marathon-url", url)
    assert outcome.code == 2, outcome
    assert "invalid --marathon-url 'https://***@" in outcome.stderr.replace("http://", "https://")
    assert "ss0rdX" not in outcome.stderr + outcome.stdout


def test_a_value_named_like_a_secret_only_in_part_leaves_the_result_whole(
    tmp_path: Path,
) -> None:
    """Only a word of the name makes a secret (OAUTH_CLIENT_ID is none), and a value
    within a name treadle writes (its cluster) is never masked there: a later step reads
    the server group from the result."""
    spec = tmp_path / "app.json"
    spec.write_text(
        '{"env": {"OAUTH_CLIENT_ID": "web-prod", "AUTH_PORT": "8080", "API_TOKEN": "web"}}'
    )
    with MarathonEmulator(**FAST) as marathon:
        outcome = treadle(
            "deploy",
            "--app",
            "web",
            "--stack",
            "prod",
            "--image",
            "web:1",
            "--spec",
            str(spec),
            "--marathon-url",
            marathon.url,
        )
    assert outcome.code == 0, outcome
    assert outcome.result is not None
    assert outcome.result["server_group"] == "web-prod-v000"
    assert outcome.result["cluster"] == "web-prod"
