"""Where a DC/OS cluster's services answer, and the one HTTP session (connection pool, TLS,
credentials) that the clients of Marathon, Metronome and Mesos share, so that a service
account logs in once for all of them."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from treadle.console import Console
from treadle.errors import InputError
from treadle.providers.marathon.auth import (
    LOGIN_PATH,
    Auth,
    BasicAuth,
    ServiceAccountAuth,
    TokenAuth,
)
from treadle.providers.marathon.http import DcosClient, check_url, observed_post
from treadle.providers.marathon.settings import MarathonSettings
from treadle.waiting import Deadline

MARATHON_UNDER_DCOS = "/service/marathon"
METRONOME_UNDER_DCOS = "/service/metronome"


@dataclass(frozen=True)
class Urls:
    marathon: str | None
    metronome: str | None
    # The cluster itself, where Admin Router serves the login, /mesos and /agent/<id>.
    root: str | None

    @classmethod
    def of(cls, connection: MarathonSettings) -> Urls:
        dcos = check_url(connection.dcos_url, "--dcos-url") if connection.dcos_url else None
        marathon = _service(connection.marathon_url, "--marathon-url", dcos, MARATHON_UNDER_DCOS)
        metronome = _service(
            connection.metronome_url, "--metronome-url", dcos, METRONOME_UNDER_DCOS
        )
        # A service URL under Admin Router tells where the cluster is.
        root = (
            dcos or _below(metronome, METRONOME_UNDER_DCOS) or _below(marathon, MARATHON_UNDER_DCOS)
        )
        return cls(marathon, metronome, root)


def _service(url: str | None, flag: str, dcos: str | None, under_dcos: str) -> str | None:
    if url:
        return check_url(url, flag)
    return dcos + under_dcos if dcos else None


def _below(url: str | None, suffix: str) -> str | None:
    return url.removesuffix(suffix) if url and url.endswith(suffix) else None


class Session:
    def __init__(
        self,
        connection: MarathonSettings,
        *,
        deadline: Deadline,
        console: Console,
        request_timeout: float,
    ) -> None:
        self.urls = Urls.of(connection)
        if not (self.urls.marathon or self.urls.metronome):
            raise InputError(
                "the marathon provider needs --marathon-url, --metronome-url or --dcos-url"
            )
        self.deadline = deadline
        self.console = console
        self.request_timeout = request_timeout
        self.http = httpx.Client(verify=tls_verification(connection, self.urls))
        # Without a cluster URL, a lone service is its own login host (a Marathon behind
        # its own IAM proxy).
        login_host = self.urls.root or self.urls.marathon or self.urls.metronome
        assert login_host is not None
        self.auth = choose_auth(
            connection, login_host + LOGIN_PATH, observed_post(self.http, console), console.mask
        )

    def client(self, base_url: str, what: str) -> DcosClient:
        return DcosClient(
            base_url,
            auth=self.auth,
            deadline=self.deadline,
            console=self.console,
            what=what,
            http=self.http,
            request_timeout=self.request_timeout,
        )

    def close(self) -> None:
        self.http.close()


def tls_verification(connection: MarathonSettings, urls: Urls) -> bool | ssl.SSLContext:
    if connection.insecure:
        return False
    if not connection.ca_cert:
        # Where no TLS will be spoken (redirects are not followed), loading the CA bundle
        # would only cost every stage a fiftieth of a second.
        return any(
            url.startswith("https:") for url in (urls.marathon, urls.metronome, urls.root) if url
        )
    try:
        return ssl.create_default_context(cafile=connection.ca_cert)
    except FileNotFoundError:
        raise InputError(f"--ca-cert {connection.ca_cert}: no such file") from None
    except (OSError, ssl.SSLError) as e:
        raise InputError(f"--ca-cert {connection.ca_cert}: not a PEM CA bundle ({e})") from None


def choose_auth(
    connection: MarathonSettings,
    login_url: str,
    post: Callable[..., httpx.Response],
    secret: Callable[[str], None],
) -> Auth:
    """`secret` is told every credential obtained on the way (a login's token), so that
    it is masked like the ones given."""
    if connection.service_account_uid or connection.service_account_key:
        if not (connection.service_account_uid and connection.service_account_key):
            raise InputError(
                "a service account needs both --service-account-uid and --service-account-key"
            )
        return ServiceAccountAuth(
            connection.service_account_uid,
            connection.service_account_key,
            login_url,
            post=post,
            on_token=secret,
        )
    if connection.token:
        return TokenAuth(connection.token)
    if connection.username or connection.password:
        if not (connection.username and connection.password):
            raise InputError("HTTP basic auth needs both --username and --password")
        return BasicAuth(connection.username, connection.password)
    return Auth()
