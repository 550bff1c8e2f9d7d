"""A DC/OS service account's login: the JWT it signs, the key it reads, the secrets it
hands on to be masked."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from treadle.errors import InputError
from treadle.providers.marathon.auth import LOGIN_JWT_SECONDS, ServiceAccountAuth

LOGIN_URL = "https://dcos.example/acs/api/v1/auth/login"


def write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_login_signs_an_rs256_jwt_and_hands_on_both_secrets_first(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    told: list[str] = []
    posted: list[dict[str, Any]] = []

    def post(url: str, json: dict[str, Any]) -> httpx.Response:
        assert url == LOGIN_URL
        assert told == [json["token"]], "the login JWT is masked before it is sent"
        posted.append(json)
        return httpx.Response(200, json={"token": "issued-token"})

    auth = ServiceAccountAuth(
        "ci", str(write_key(tmp_path / "ci.pem", rsa_key)), LOGIN_URL, post, told.append
    )
    request = httpx.Request("GET", "https://dcos.example/service/marathon/v2/apps")
    auth.apply(request)

    assert request.headers["Authorization"] == "token=issued-token"
    (login,) = posted
    assert told == [login["token"], "issued-token"]
    assert jwt.get_unverified_header(login["token"]) == {"alg": "RS256", "typ": "JWT"}
    claims = jwt.decode(login["token"], rsa_key.public_key(), algorithms=["RS256"])
    assert claims["uid"] == login["uid"] == "ci"
    assert 0 < claims["exp"] - time.time() <= LOGIN_JWT_SECONDS


def unreadable(tmp_path: Path) -> Path:
    return tmp_path / "missing.pem"


def not_pem(tmp_path: Path) -> Path:
    path = tmp_path / "ci.pem"
    path.write_text("ssh-rsa AAAA ci@example\n")
    return path


def public_key(tmp_path: Path) -> Path:
    path = tmp_path / "ci.pub"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    path.write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def encrypted(tmp_path: Path) -> Path:
    path = tmp_path / "ci.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass"),
        )
    )
    return path


def elliptic(tmp_path: Path) -> Path:
    return write_key(tmp_path / "ci.pem", ec.generate_private_key(ec.SECP256R1()))


@pytest.mark.parametrize(
    ("key_file", "message"),
    [
        (unreadable, "cannot read it"),
        (not_pem, "not an unencrypted PEM RSA private key"),
        (public_key, "not an unencrypted PEM RSA private key"),
        (encrypted, "not an unencrypted PEM RSA private key"),
        (elliptic, "not an unencrypted PEM RSA private key"),
    ],
)
def test_a_key_that_cannot_sign_is_an_input_error_before_any_request(
    tmp_path: Path, key_file: Any, message: str
) -> None:
    def post(url: str, json: dict[str, Any]) -> httpx.Response:
        raise AssertionError("no login with a key that cannot sign")

    path = key_file(tmp_path)
    with pytest.raises(InputError, match=message) as raised:
        ServiceAccountAuth("ci", str(path), LOGIN_URL, post)
    assert str(raised.value).startswith(f"--service-account-key {path}: ")
    assert "\n" not in str(raised.value)
