"""DC/OS and Marathon authentication: an ACS token, HTTP basic, or a service account that
logs in with an RS256-signed JWT and logs in again when its token expires."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from treadle.errors import InputError, ProviderUnavailable

LOGIN_PATH = "/acs/api/v1/auth/login"
# Lifetime of the login JWT itself; the token DC/OS issues in exchange lives longer.
LOGIN_JWT_SECONDS = 300


class Auth:
    """Adds credentials to a request; `renew` is asked once after a 401 and says whether
    retrying can help."""

    def apply(self, request: httpx.Request) -> None:
        pass

    def renew(self) -> bool:
        return False

    def hint(self) -> str:
        return "give --token (or DCOS_ACS_TOKEN), --username/--password, or a service account"


class TokenAuth(Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = f"token={self.token}"

    def hint(self) -> str:
        return "check --token (or DCOS_ACS_TOKEN): it may be wrong or expired"


class BasicAuth(Auth):
    def __init__(self, username: str, password: str) -> None:
        pair = f"{username}:{password}".encode()
        self.header = f"Basic {base64.b64encode(pair).decode()}"

    def apply(self, request: httpx.Request) -> None:
        request.headers["Authorization"] = self.header

    def hint(self) -> str:
        return "check --username and --password"


class ServiceAccountAuth(Auth):
    """`on_token` is told each secret a login makes (the signed login JWT, then the token
    DC/OS gives for it) before it is used, so that it is masked like the ones given."""

    def __init__(
        self,
        uid: str,
        key_file: str,
        login_url: str,
        post: Callable[..., httpx.Response],
        on_token: Callable[[str], None] = lambda token: None,
    ):
        self.uid = uid
        self.login_url = login_url
        self._post = post
        self._on_token = on_token
        self._sign = login_signer(key_file)
        self._token: str | None = None

    def apply(self, request: httpx.Request) -> None:
        if self._token is None:
            self._token = self.login()
        request.headers["Authorization"] = f"token={self._token}"

    def renew(self) -> bool:
        self._token = None
        return True

    def login(self) -> str:
        login_jwt = self._sign({"uid": self.uid, "exp": int(time.time()) + LOGIN_JWT_SECONDS})
        # Until it expires it logs in as the account: as secret as the token it buys.
        self._on_token(login_jwt)
        response = self._post(self.login_url, json={"uid": self.uid, "token": login_jwt})
        if response.status_code != 200:
            raise ProviderUnavailable(
                f"DC/OS login as service account {self.uid!r} failed at {self.login_url} "
                f"({response.status_code}): check --service-account-uid and its key"
            )
        try:
            token: str = response.json()["token"]
        except (ValueError, KeyError, TypeError):
            raise ProviderUnavailable(
                f"DC/OS login at {self.login_url} answered without a token"
            ) from None
        self._on_token(token)
        return token

    def hint(self) -> str:
        return f"service account {self.uid!r} was logged in but is not accepted"


def login_signer(path: str) -> Callable[[dict[str, Any]], str]:
    """Signs login claims (an RS256 JWT) with the service account's key, read now."""
    # Imported here: only a service account needs them, and they cost start-up time.
    try:
        import jwt
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ModuleNotFoundError:
        raise InputError(
            "service-account login needs PyJWT and cryptography: pip install 'treadle[dcos]'"
        ) from None
    if "-----BEGIN" in path or "\n" in path or len(path) > 4096:
        # Never quoted: it is the key itself.
        raise InputError(
            "--service-account-key takes the path of the key's PEM file, not the key itself "
            "(write it to a file, e.g. from a CI secret file variable)"
        )
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"--service-account-key {path}: cannot read it ({e.strerror})") from None
    # Loaded here rather than handed to PyJWT as PEM: PyJWT would read it only at the
    # first login, and would take a public key too.
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):  # not PEM, or encrypted
        key = None
    if not isinstance(key, RSAPrivateKey):
        raise InputError(f"--service-account-key {path}: not an unencrypted PEM RSA private key")
    return lambda claims: jwt.encode(claims, key, algorithm="RS256")
