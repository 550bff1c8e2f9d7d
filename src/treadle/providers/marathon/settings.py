"""How to reach DC/OS Marathon and Metronome, and log in."""

from __future__ import annotations

from dataclasses import dataclass

from treadle.providers.settings import setting


@dataclass(frozen=True)
class MarathonSettings:
    marathon_url: str | None = setting("--marathon-url", "Marathon base URL.", url=True)
    metronome_url: str | None = setting("--metronome-url", "Metronome base URL.", url=True)
    dcos_url: str | None = setting(
        "--dcos-url",
        "DC/OS URL: Marathon at /service/marathon, login at /acs/api/v1/auth/login.",
        url=True,
    )
    token: str | None = setting(
        "--token",
        "DC/OS ACS token (also DCOS_ACS_TOKEN).",
        envvars=("DCOS_ACS_TOKEN",),
        secret=True,
    )
    username: str | None = setting("--username", "HTTP basic auth user.")
    password: str | None = setting("--password", "HTTP basic auth password.", secret=True)
    service_account_uid: str | None = setting("--service-account-uid", "DC/OS service account id.")
    service_account_key: str | None = setting(
        "--service-account-key", "Its RS256 private key (PEM file)."
    )
    ca_cert: str | None = setting(
        "--ca-cert", "CA bundle (PEM) that signed the cluster's certificate."
    )
    insecure: bool = setting("--insecure", "Do not verify TLS certificates.", is_flag=True)

    @property
    def given(self) -> bool:
        """A DC/OS URL is given: the provider to use when none is named."""
        return bool(self.marathon_url or self.metronome_url or self.dcos_url)
