"""The Compose scenario every engine provider (Docker, Swarm) must pass: a web service of a
Compose file deployed red/black, talking by alias to a database-like sidecar (deployed
from the same file as a cluster of its own) on a network the file declares, keeping
what it writes on a named volume that outlives each server group, taking part of its
environment from an env file, and, where the provider has them, reading a secret.

A provider's test class mixes it in with the stage contract's fixtures, and
`remove_labelled`-style cleanup of its region (networks and volumes carry its label).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml

# The web service answers /visits once it reaches db by alias (and reads its secret).
COMPOSE = {
    "services": {
        "web": {
            "command": [
                "sh",
                "-c",
                'echo "$$GREETING $$RELEASE" >> /data/visits; '
                "trap exit TERM; httpd -f -p 8080 -h /data & wait",
            ],
            "env_file": "web.env",
            "environment": {"RELEASE": "${RELEASE:-dev}"},
            "networks": ["backend"],
            "volumes": ["data:/data"],
            "ports": [{"target": 8080, "mode": "host"}],
            "healthcheck": {
                "test": "wget -q -O /dev/null http://db:5432/ && "
                "wget -q -O /dev/null http://127.0.0.1:8080/visits",
                "interval": "500ms",
                "retries": 3,
            },
        },
        "db": {
            "command": [
                "sh",
                "-c",
                "echo ok > /tmp/index.html; trap exit TERM; httpd -f -p 5432 -h /tmp & wait",
            ],
            "networks": {"backend": {"aliases": ["db"]}},
            "deploy": {"endpoint_mode": "dnsrr"},
        },
    },
    "networks": {"backend": {"name": "${PREFIX}-backend"}},
    "volumes": {"data": {"name": "${PREFIX}-data"}},
}


class ComposeContract:
    # Whether the provider keeps secrets (Swarm): the web service then reads one.
    keeps_secrets = False

    def test_a_compose_service_red_black_with_a_sidecar_a_volume_an_env_file(
        self, connection_args, provider, region, image, image_v2, tmp_path: Path
    ) -> None:
        document: dict[str, Any] = yaml.safe_load(yaml.safe_dump(COMPOSE))
        (tmp_path / "web.env").write_text('GREETING="hello from the env file"\n')
        if self.keeps_secrets:
            (tmp_path / "token.txt").write_text("s3cret\n")
            document["secrets"] = {"token": {"name": "${PREFIX}-token", "file": "./token.txt"}}
            web = document["services"]["web"]
            web["secrets"] = ["token"]
            web["healthcheck"]["test"] += " && grep -q s3cret /run/secrets/token"
        path = tmp_path / "compose.yaml"
        path.write_text(yaml.safe_dump(document))
        env = {"PREFIX": region, "RELEASE": "r1"}

        def deploy(app: str, service: str, image: str, *extra: str) -> dict[str, Any]:
            outcome = self.stage(  # type: ignore[attr-defined]
                connection_args,
                "deploy", "--app", app, "--region", region, "--image", image, "--timeout", "90s",
                "--spec", str(path), "--service", service, *extra,
                env=env,
            )  # fmt: skip
            assert outcome.code == 0, outcome
            assert outcome.result is not None
            return outcome.result

        deploy("db", "db", image)
        first = deploy("web", "web", image, "--instances", "2")
        assert first["server_group"] == "web-v000"
        env["RELEASE"] = "r2"
        second = deploy("web", "web", image_v2, "--strategy", "red-black")
        assert second["disabled_server_groups"] == ["web-v000"]
        groups = {g.name: (g.enabled, g.instances) for g in provider.server_groups(region)}
        assert groups == {"db-v000": (True, 1), "web-v000": (False, 0), "web-v001": (True, 2)}

        # What both versions wrote is on the one volume, the greeting from the env file.
        with httpx.Client(trust_env=False, timeout=5) as client:
            visits = client.get(f"http://{second['endpoints'][0]}/visits").text.splitlines()
        assert (
            sorted(visits)
            == ["hello from the env file r1"] * 2 + ["hello from the env file r2"] * 2
        )
