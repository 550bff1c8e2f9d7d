"""Credentials the emulators accept, and the DC/OS IAM service-account login.

Token and Basic stand for a Marathon behind an auth plugin; ServiceAccount for a DC/OS
cluster where a client logs in at /acs/api/v1/auth/login with an RS256 JWT signed by the
account's private key and then sends `Authorization: token=<issued>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .messages import Request, Response, html_page

LOGIN_PATH = "/acs/api/v1/auth/login"
# DC/OS issues login tokens valid for five days.
ISSUED_TOKEN_TTL_SECONDS = 5 * 24 * 3600


@dataclass(frozen=True)
class Token:
    """A fixed token: requests must carry `Authorization: token=<secret>`."""

    secret: str


@dataclass(frozen=True)
class Basic:
    """HTTP basic authentication."""

    username: str
    password: str


@dataclass(frozen=True)
class ServiceAccount:
    """A DC/OS service account; its public key verifies login JWTs."""

    uid: str
    public_key_pem: bytes


AuthMode = Token | Basic | ServiceAccount | None


class LoginError(Exception):
    pass


def b64url_decode(segment: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as error:
        raise LoginError(f"invalid base64url segment: {error}") from error


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def verify_rs256(jwt: str, public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    """Return the claims of an RS256 JWT whose signature `public_key` verifies."""
    parts = jwt.split(".")
    if len(parts) != 3:
        raise LoginError("token is not a JWT (expected three dot-separated segments)")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as error:
        raise LoginError(f"JWT header or payload is not JSON: {error}") from error
    if not isinstance(header, dict) or header.get("alg") != "RS256":
        raise LoginError("JWT must be signed with RS256")
    if not isinstance(claims, dict):
        raise LoginError("JWT payload must be a JSON object")
    try:
        public_key.verify(
            b64url_decode(parts[2]),
            f"{parts[0]}.{parts[1]}".encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except InvalidSignature as error:
        raise LoginError("JWT signature verification failed") from error
    return claims


def _same(given: str, expected: str) -> bool:
    # Bytes, because compare_digest refuses non-ASCII str (headers arrive as latin-1).
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


class Authenticator:
    """Checks credentials on each request and answers 401/403 the way the cluster would."""

    def __init__(self, mode: AuthMode, admin_router: bool) -> None:
        self.mode = mode
        self.admin_router = admin_router
        self._issued: set[str] = set()
        self._lock = threading.Lock()
        # Issued tokens are HS256 JWTs like the real ones, signed with a per-emulator key.
        self._signing_key = secrets.token_bytes(32)
        self._public_key: rsa.RSAPublicKey | None = None
        if isinstance(mode, ServiceAccount):
            key = serialization.load_pem_public_key(mode.public_key_pem)
            if not isinstance(key, rsa.RSAPublicKey):
                raise TypeError("ServiceAccount.public_key_pem must be an RSA public key")
            self._public_key = key

    def expire_tokens(self) -> None:
        """Invalidate every issued token, as if they had all expired."""
        with self._lock:
            self._issued.clear()

    def authenticate(self, request: Request) -> Response | None:
        """None when the request carries valid credentials (or auth is off), else the 401."""
        if self.mode is None:
            return None
        header = request.headers.get("authorization", "")
        if isinstance(self.mode, Token) and _same(header, f"token={self.mode.secret}"):
            return None
        if isinstance(self.mode, Basic) and self._basic_matches(header, self.mode):
            return None
        if isinstance(self.mode, ServiceAccount) and header.startswith("token="):
            with self._lock:
                if header[len("token=") :] in self._issued:
                    return None
        return self.unauthorized()

    @staticmethod
    def _basic_matches(header: str, mode: Basic) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[len("Basic ") :], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return _same(decoded, f"{mode.username}:{mode.password}")

    def unauthorized(self) -> Response:
        if self.admin_router:
            page = html_page(401, "Authorization Required")
            page.headers["WWW-Authenticate"] = "acsjwt"
            return page
        headers = (
            {"WWW-Authenticate": 'Basic realm="marathon"'} if isinstance(self.mode, Basic) else {}
        )
        return Response(401, {"message": "Invalid username or password."}, headers=headers)

    def forbidden(self) -> Response:
        if self.admin_router:
            return html_page(403, "Forbidden")
        return Response(403, {"message": "Not Authorized to perform this action!"})

    def login(self, request: Request) -> Response:
        """POST /acs/api/v1/auth/login with {"uid", "token": <RS256 JWT>} -> {"token": ...}."""
        body = request.body
        if not isinstance(body, dict) or not isinstance(body.get("uid"), str):
            return Response(
                400,
                {
                    "title": "Bad Request",
                    "description": "Request body must be JSON with a string 'uid'.",
                    "code": "ERR_MALFORMED_REQUEST",
                },
            )
        try:
            claims = self._verify_login(body)
        except LoginError as error:
            return Response(
                401,
                {
                    "title": "Authentication failed",
                    "description": str(error),
                    "code": "ERR_INVALID_CREDENTIALS",
                },
                headers={"WWW-Authenticate": "acsjwt"},
            )
        expires = int(time.time()) + ISSUED_TOKEN_TTL_SECONDS
        token = self._issue(claims["uid"], expires)
        with self._lock:
            self._issued.add(token)
        return Response(200, {"token": token})

    def _verify_login(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(self.mode, ServiceAccount) or self._public_key is None:
            raise LoginError("Service login is not configured on this cluster.")
        if body["uid"] != self.mode.uid:
            raise LoginError(f"Service account '{body['uid']}' does not exist.")
        jwt = body.get("token")
        if not isinstance(jwt, str):
            raise LoginError("Service login requires a 'token' (RS256 JWT).")
        claims = verify_rs256(jwt, self._public_key)
        if claims.get("uid") != self.mode.uid:
            raise LoginError("JWT claim 'uid' does not match the login uid.")
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or isinstance(exp, bool) or exp <= time.time():
            raise LoginError("JWT 'exp' claim is missing or in the past.")
        return claims

    def _issue(self, uid: str, expires: int) -> str:
        header = b64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64url_encode(json.dumps({"uid": uid, "exp": expires}).encode())
        signature = hmac.new(
            self._signing_key, f"{header}.{payload}".encode(), hashlib.sha256
        ).digest()
        return f"{header}.{payload}.{b64url_encode(signature)}"
