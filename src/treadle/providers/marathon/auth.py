"""DC/OS and Marathon authentication: an ACS token, HTTP basic, or a service account that
logs in with an RS256-signed JWT and logs in again when its token expires."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

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
        self._key = load_private_key(key_file)
        self._token: str | None = None

    def apply(self, request: httpx.Request) -> None:
        if self._token is None:
            self._token = self.login()
        request.headers["Authorization"] = f"token={self._token}"

    def renew(self) -> bool:
        self._token = None
        return True

    def login(self) -> str:
        jwt = sign_rs256({"uid": self.uid, "exp": int(time.time()) + LOGIN_JWT_SECONDS}, self._key)
        response = self._post(self.login_url, json={"uid": self.uid, "token": jwt})
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


def load_private_key(path: str):  # type: ignore[no-untyped-def]
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ModuleNotFoundError:
        raise InputError(
            "service-account login needs the 'cryptography' library: pip install 'treadle[dcos]'"
        ) from None
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"--service-account-key {path}: cannot read it ({e.strerror})") from None
    try:
        return load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise InputError(
            f"--service-account-key {path}: not an unencrypted PEM private key"
        ) from None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_rs256(claims: dict[str, object], key) -> str:  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    header = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{_b64(signature)}"
