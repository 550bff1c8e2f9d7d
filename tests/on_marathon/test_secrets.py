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
