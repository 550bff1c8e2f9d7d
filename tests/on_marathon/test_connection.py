"""Reaching Marathon: URLs, credentials, TLS options and transient faults."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from emulator import Basic, MarathonEmulator, Request, Response, ServiceAccount, Token
from helpers import treadle

from .conftest import FAST

LIST = ["find-image", "--cluster", "web-prod", "--include-disabled"]
APP = {
    "id": "/web-prod-v000",
    "instances": 1,
    "container": {"type": "DOCKER", "docker": {"image": "web:1"}},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_marathon_is_exit_4_quickly() -> None:
    started = time.monotonic()
    outcome = treadle(
        *LIST, "--marathon-url", f"http://127.0.0.1:{free_port()}", "--timeout", "10m"
    )
    assert outcome.code == 4, outcome
    assert time.monotonic() - started < 5, "a URL that never answered must not wait for --timeout"
    assert "cannot reach Marathon" in outcome.stderr
    assert outcome.result is not None and outcome.result["error"]["type"] == "ProviderUnavailable"


def test_a_server_that_is_not_marathon_is_exit_4(tmp_path: Path) -> None:
    with MarathonEmulator(**FAST) as emu:
        outcome = treadle(*LIST, "--marathon-url", emu.url + "/not-marathon")
    assert outcome.code == 4, outcome
    assert "does not look like Marathon" in outcome.stderr


@pytest.mark.parametrize("admin_router", [False, True])
def test_a_rejected_token_is_exit_4_and_never_printed(admin_router: bool) -> None:
    with MarathonEmulator(auth=Token("right-token"), admin_router=admin_router, **FAST) as emu:
        outcome = treadle(*LIST, "--marathon-url", emu.url, "--token", "wrong-token")
        assert emu.mutating_requests() == []
    assert outcome.code == 4, outcome
    assert "refused the credentials (401)" in outcome.stderr
    assert "--token" in outcome.stderr
    assert "wrong-token" not in outcome.stderr + outcome.stdout


def test_token_from_dcos_acs_token_and_dcos_url() -> None:
    with MarathonEmulator(auth=Token("s3cret-token"), **FAST) as emu:
        emu.add_app(APP)
        outcome = treadle(*LIST, "--dcos-url", emu.dcos_url, env={"DCOS_ACS_TOKEN": "s3cret-token"})
        assert outcome.code == 0, outcome
        assert all(r.headers.get("authorization") == "token=s3cret-token" for r in emu.requests)
    assert outcome.result is not None and outcome.result["image"] == "web:1"
    assert "s3cret-token" not in outcome.stdout + outcome.stderr


def test_forbidden_is_exit_4() -> None:
    with MarathonEmulator(auth=Token("t0ken"), admin_router=True, **FAST) as emu:
        emu.forbidden = True
        outcome = treadle(*LIST, "--marathon-url", emu.url, "--token", "t0ken")
    assert outcome.code == 4, outcome
    assert "403" in outcome.stderr


def test_basic_auth() -> None:
    with MarathonEmulator(auth=Basic("ci", "pa55word"), **FAST) as emu:
        emu.add_app(APP)
        ok = treadle(*LIST, "--marathon-url", emu.url, "--username", "ci", "--password", "pa55word")
        bad = treadle(*LIST, "--marathon-url", emu.url, "--username", "ci", "--password", "nope1")
    assert ok.code == 0, ok
    assert bad.code == 4 and "--username and --password" in bad.stderr
    assert "pa55word" not in ok.stderr + bad.stderr


def rsa_key(tmp_path: Path) -> tuple[Path, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "ci.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, public


def test_service_account_logs_in_and_logs_in_again_when_its_token_expires(tmp_path: Path) -> None:
    key, public = rsa_key(tmp_path)
    with MarathonEmulator(auth=ServiceAccount(uid="ci", public_key_pem=public), **FAST) as emu:
        emu.add_app(APP)
        args = [
            *LIST,
            "--dcos-url",
            emu.dcos_url,
            "--service-account-uid",
            "ci",
            "--service-account-key",
            str(key),
        ]
        first = treadle(*args)
        assert first.code == 0, first
        logins = [r for r in emu.requests if r.path == "/acs/api/v1/auth/login"]
        assert len(logins) == 1

        emu.expire_tokens()
        second = treadle(
            "deploy",
            "--app",
            "web",
            "--stack",
            "prod",
            "--image",
            "web:2",
            "--dcos-url",
            emu.dcos_url,
            "--service-account-uid",
            "ci",
            "--service-account-key",
            str(key),
            "--no-wait",
        )
        assert second.code == 0, second


def test_service_account_with_the_wrong_key_is_exit_4(tmp_path: Path) -> None:
    _, public = rsa_key(tmp_path)
    other_key, _ = rsa_key(tmp_path / "..")
    with MarathonEmulator(auth=ServiceAccount(uid="ci", public_key_pem=public), **FAST) as emu:
        outcome = treadle(
            *LIST,
            "--dcos-url",
            emu.dcos_url,
            "--service-account-uid",
            "ci",
            "--service-account-key",
            str(other_key),
        )
    assert outcome.code == 4, outcome
    assert "service account 'ci'" in outcome.stderr


def test_a_deployment_lock_is_waited_out() -> None:
    """A resize right after a deploy that did not wait meets Marathon's 409 lock; treadle
    retries until the deployment is done instead of failing."""
    with MarathonEmulator(**{**FAST, "deploy_seconds": 0.8}) as marathon:
        waited_out_lock(marathon)


def waited_out_lock(marathon: MarathonEmulator) -> None:
    deployed = treadle(
        "deploy", "--app", "web", "--image", "web:1", "--no-wait", "--marathon-url", marathon.url
    )
    assert deployed.code == 0, deployed
    resized = treadle(
        "resize", "--server-group", "web-v000", "--instances", "2", "--marathon-url", marathon.url
    )
    assert resized.code == 0, resized
    puts = [r for r in marathon.requests if r.method == "PUT"]
    assert len(puts) >= 2, "the first PUT met the lock and was retried"
    assert marathon.app("/web-v000")["instances"] == 2


def failing_first(
    count: int, status: int, methods: tuple[str, ...] = ("GET", "POST", "PUT", "DELETE")
):
    """A fault that answers the first `count` matching requests with `status` and an empty
    body, as a proxy does while Marathon elects a new leader."""
    seen = {"n": 0}

    def fault(request: Request) -> Response | None:
        if request.method in methods and request.path.startswith("/v2/") and seen["n"] < count:
            seen["n"] += 1
            return Response(status, None)
        return None

    return fault


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_and_leader_elections_are_retried(
    marathon: MarathonEmulator, status: int
) -> None:
    marathon.faults.append(failing_first(3, status))
    outcome = treadle("deploy", "--app", "web", "--image", "web:1", "--marathon-url", marathon.url)
    assert outcome.code == 0, outcome
    assert marathon.app("/web-v000")["tasksRunning"] == 1
    assert len([r for r in marathon.app_changes() if r.method == "POST"]) == 1


def test_a_marathon_that_stays_unavailable_fails_at_the_timeout(marathon: MarathonEmulator) -> None:
    marathon.faults.append(failing_first(10_000, 503))
    started = time.monotonic()
    outcome = treadle(
        "find-image", "--cluster", "web", "--timeout", "2s", "--marathon-url", marathon.url
    )
    assert outcome.code == 1, outcome
    assert 2 <= time.monotonic() - started < 6
    assert "kept failing until the timeout" in outcome.stderr


def test_tls_is_verified_against_the_cluster_ca(tmp_path: Path) -> None:
    from emulator.tls import make_tls

    tls, ca_file = make_tls(tmp_path)
    emu = MarathonEmulator(**FAST)
    url = emu.start(tls=tls)
    try:
        emu.add_app(APP)
        assert url.startswith("https://")
        untrusted = treadle(*LIST, "--marathon-url", url)
        trusted = treadle(*LIST, "--marathon-url", url, "--ca-cert", str(ca_file))
        insecure = treadle(*LIST, "--marathon-url", url, "--insecure")
    finally:
        emu.stop()
    assert untrusted.code == 4, untrusted
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr or "certificate" in untrusted.stderr
    assert trusted.code == 0, trusted
    assert insecure.code == 0, insecure


def test_the_token_a_service_account_login_obtains_is_masked_too(tmp_path: Path) -> None:
    key, public = rsa_key(tmp_path)
    with MarathonEmulator(auth=ServiceAccount(uid="ci", public_key_pem=public), **FAST) as emu:
        emu.add_app(APP)
        outcome = treadle(
            *LIST,
            "--dcos-url",
            emu.dcos_url,
            "--service-account-uid",
            "ci",
            "--service-account-key",
            str(key),
            env={"GITHUB_ACTIONS": "true"},
        )
        issued = [
            r.headers["authorization"].removeprefix("token=")
            for r in emu.requests
            if r.headers.get("authorization", "").startswith("token=")
        ]
    assert outcome.code == 0, outcome
    assert issued, "the stage used the token it obtained"
    assert f"::add-mask::{issued[0]}" in outcome.stderr.splitlines()
