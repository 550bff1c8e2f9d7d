"""Marathon-specific stage behaviour: specs, health checks, regions, results."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from emulator import MarathonEmulator
from helpers import treadle

from .conftest import FAST

HEALTH_CHECKED = {
    "cpus": 0.1,
    "mem": 64,
    "container": {
        "type": "DOCKER",
        "docker": {"network": "BRIDGE", "portMappings": [{"containerPort": 8080, "hostPort": 0}]},
    },
    "healthChecks": [
        {
            "protocol": "HTTP",
            "path": "/health",
            "portIndex": 0,
            "gracePeriodSeconds": 5,
            "intervalSeconds": 2,
            "maxConsecutiveFailures": 3,
        }
    ],
    "env": {"VERSION": "{{ build.version }}"},
    "labels": {"team": "{{ build.team }}"},
}


def app_with(image: str, app_id: str = "/web-prod-v000", instances: int = 1, **labels: str) -> dict:
    return {
        "id": app_id,
        "instances": instances,
        "labels": labels,
        "container": {"type": "DOCKER", "docker": {"image": image}},
    }


def test_spec_file_with_placeholders_and_health_checks(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    spec = tmp_path / "app.yaml"
    spec.write_text(json.dumps(HEALTH_CHECKED))
    build = tmp_path / "build.json"
    build.write_text(json.dumps({"version": "1.4.2", "team": "payments", "instances": 3}))
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--stack",
        "prod",
        "--image",
        "registry.example/web:{{ build.version }}",
        "--instances",
        "{{ build.instances }}",
        "--spec",
        str(spec),
        "--context",
        f"build={build}",
        "--region",
        "/prod/us-east",
        "--marathon-url",
        marathon.url,
    )
    assert outcome.code == 0, outcome
    app = marathon.app("/prod/us-east/web-prod-v000")
    assert app["container"]["docker"]["image"] == "registry.example/web:1.4.2"
    assert app["env"] == {"VERSION": "1.4.2"}
    assert app["instances"] == 3 and app["tasksHealthy"] == 3
    assert app["labels"]["team"] == "payments"
    assert app["labels"]["treadle.cluster"] == "web-prod"
    assert app["labels"]["treadle.sequence"] == "000"
    assert "web-prod-v000: 3/3 healthy" in outcome.stderr


def test_a_fetched_app_used_as_spec_is_stripped_of_read_only_fields(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    marathon.add_app(app_with("web:1", instances=2))
    fetched = dict(marathon.app("/web-prod-v000"))
    spec = tmp_path / "fetched.json"
    spec.write_text(json.dumps(fetched))
    outcome = treadle(
        "deploy",
        "--cluster",
        "web-prod",
        "--image",
        "web:2",
        "--spec",
        str(spec),
        "--strategy",
        "red-black",
        "--marathon-url",
        marathon.url,
    )
    assert outcome.code == 0, outcome
    post = next(r for r in marathon.app_changes() if r.method == "POST" and r.path == "/v2/apps")
    assert not {"version", "versionInfo", "tasks", "tasksRunning", "deployments"} & set(post.body)
    assert post.body["id"] == "/web-prod-v001"


def test_health_checks_that_never_pass_time_out(marathon: MarathonEmulator, tmp_path: Path) -> None:
    marathon.unhealthy_images.add("web:sick")
    spec = tmp_path / "app.json"
    spec.write_text(
        json.dumps({k: v for k, v in HEALTH_CHECKED.items() if k not in ("env", "labels")})
    )
    started = time.monotonic()
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:sick",
        "--spec",
        str(spec),
        "--timeout",
        "2s",
        "--marathon-url",
        marathon.url,
    )
    took = time.monotonic() - started
    assert outcome.code == 1, outcome
    assert 2 <= took < 6
    assert outcome.result["error"]["type"] == "Timeout"
    assert (
        outcome.result["error"]["message"] == "web-v000: not done after 2s (0/1 healthy, 1 running)"
    )


def test_failing_tasks_fail_fast_with_marathons_reason(marathon: MarathonEmulator) -> None:
    marathon.failing_images.add("web:broken")
    started = time.monotonic()
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:broken",
        "--timeout",
        "60s",
        "--marathon-url",
        marathon.url,
    )
    assert outcome.code == 1, outcome
    assert time.monotonic() - started < 20, "failing tasks must not wait for the whole --timeout"
    assert "instances failed" in outcome.result["error"]["message"]


def test_several_regions_deploy_concurrently() -> None:
    with MarathonEmulator(**{**FAST, "deploy_seconds": 1.0}) as marathon:
        deploys_concurrently(marathon)


def deploys_concurrently(marathon: MarathonEmulator) -> None:
    started = time.monotonic()
    outcome = treadle(
        "deploy",
        "--app",
        "web",
        "--image",
        "web:1",
        "--region",
        "/us-east",
        "--region",
        "/eu-west",
        "--region",
        "/ap-south",
        "--marathon-url",
        marathon.url,
    )
    took = time.monotonic() - started
    assert outcome.code == 0, outcome
    assert [r["region"] for r in outcome.result["regions"]] == ["/us-east", "/eu-west", "/ap-south"]
    assert took < 2.5, f"three 1s deployments took {took:.1f}s: not concurrent"
    for region in ("/us-east", "/eu-west", "/ap-south"):
        assert marathon.app(f"{region}/web-v000") is not None


def test_find_image_selections_and_regions(marathon: MarathonEmulator) -> None:
    marathon.add_app(
        app_with(
            "web:1", "/east/web-prod-v001", 3, **{"treadle.created-at": "2026-01-01T00:00:00.000Z"}
        )
    )
    marathon.add_app(
        app_with(
            "web:2", "/west/web-prod-v002", 1, **{"treadle.created-at": "2026-02-01T00:00:00.000Z"}
        )
    )
    marathon.add_app(
        app_with(
            "web:3",
            "/west/web-prod-v003",
            0,
            **{"treadle.created-at": "2026-03-01T00:00:00.000Z", "treadle.disabled-instances": "5"},
        )
    )
    marathon.add_app(app_with("other:1", "/west/other-v000", 9))
    base = [
        "find-image",
        "--cluster",
        "web-prod",
        "--region",
        "/east",
        "--region",
        "/west",
        "--marathon-url",
        marathon.url,
    ]

    def image(*extra: str) -> str:
        outcome = treadle(*base, *extra)
        assert outcome.code == 0, outcome
        return outcome.result["image"]

    assert image() == "web:2"
    assert image("--selection", "oldest") == "web:1"
    assert image("--selection", "largest") == "web:1"
    assert image("--include-disabled") == "web:3"
    assert image("--include-disabled", "--selection", "largest") == "web:3"
    assert image("--image-pattern", "web:[1]") == "web:1"

    found = treadle(*base)
    assert found.result["region"] == "/west" and found.result["repository"] == "web"
    assert found.result["tag"] == "2" and found.result["registry"] == "docker.io"

    ambiguous = treadle(*base, "--selection", "fail")
    assert ambiguous.code == 3, ambiguous
    assert "web-prod-v001 (/east)" in ambiguous.stderr

    none = treadle("find-image", "--cluster", "api-prod", "--marathon-url", marathon.url)
    assert none.code == 1 and "no enabled server group of api-prod in /" in none.stderr


def test_a_region_is_listed_as_a_group_never_by_id_substring(marathon: MarathonEmulator) -> None:
    """Marathon's `?id=` matches any part of an app id; the region's group is listed and
    the cluster picked out exactly (another cluster, a deeper group are not it)."""
    marathon.add_app(app_with("web:1", "/big/web-prod-v000"))
    marathon.add_app(app_with("web:2", "/big/web-prod-canary-v001"))  # another cluster
    marathon.add_app(app_with("web:3", "/big/deeper/web-prod-v002"))  # another region
    marathon.add_app(app_with("other:1", "/big/other-v000"))
    outcome = treadle(
        "find-image", "--cluster", "web-prod", "--region", "/big", "--marathon-url", marathon.url
    )
    assert outcome.code == 0, outcome
    assert (outcome.result["image"], outcome.result["server_group"]) == ("web:1", "web-prod-v000")
    asked = [(r.path, r.query) for r in marathon.requests]
    assert asked == [("/v2/groups/big", {"embed": ["group.apps"]})]


def test_dotenv_github_outputs_and_env_options(marathon: MarathonEmulator, tmp_path: Path) -> None:
    marathon.add_app(app_with("registry.example/web:1.0"))
    github_output, summary, dotenv = (
        tmp_path / "out",
        tmp_path / "summary.md",
        tmp_path / "build.env",
    )
    outcome = treadle(
        "find-image",
        "--dotenv",
        str(dotenv),
        env={
            "TREADLE_MARATHON_URL": marathon.url,
            "TREADLE_CLUSTER": "web-prod",
            "GITHUB_OUTPUT": str(github_output),
            "GITHUB_STEP_SUMMARY": str(summary),
        },
    )
    assert outcome.code == 0, outcome
    env_lines = dotenv.read_text().splitlines()
    assert "TREADLE_IMAGE=registry.example/web:1.0" in env_lines
    assert "TREADLE_SERVER_GROUP=web-prod-v000" in env_lines
    outputs = github_output.read_text()
    assert "image=registry.example/web:1.0\n" in outputs and "tag=1.0\n" in outputs
    result_line = next(line for line in outputs.splitlines() if line.startswith("result="))
    assert json.loads(result_line.removeprefix("result="))["server_group"] == "web-prod-v000"
    assert "find-image: succeeded" in summary.read_text()


def test_dry_run_prints_the_plan_and_sends_nothing(marathon: MarathonEmulator) -> None:
    marathon.add_app(app_with("web:1", instances=2))
    outcome = treadle(
        "deploy",
        "--cluster",
        "web-prod",
        "--image",
        "web:2",
        "--strategy",
        "red-black",
        "--dry-run",
        "--marathon-url",
        marathon.url,
    )
    assert outcome.code == 0, outcome
    assert outcome.result["planned"] == [
        "create web-prod-v001 in / with 2 instances",
        "disable web-prod-v000 in /",
    ]
    assert '"id": "/web-prod-v001"' in outcome.stderr
    assert marathon.mutating_requests() == []


def test_help_does_not_import_the_docker_sdk() -> None:
    code = (
        "import sys; from treadle.cli import app; sys.argv=['treadle','--help'];\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\nprint('docker' in sys.modules, 'httpx' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "False False"


def test_an_earlier_jobs_dotenv_results_are_not_options(
    marathon: MarathonEmulator, tmp_path: Path
) -> None:
    """GitLab passes a deploy job's dotenv to the next job; its TREADLE_SERVER_GROUP must not
    turn `destroy --cluster ... --target previous` into 'give one, not both'."""
    marathon.add_app(
        app_with("web:1", "/web-prod-v000", **{"treadle.created-at": "2026-01-01T00:00:00.000Z"})
    )
    marathon.add_app(
        app_with("web:2", "/web-prod-v001", **{"treadle.created-at": "2026-02-01T00:00:00.000Z"})
    )
    deployed = treadle(
        "find-image",
        "--cluster",
        "web-prod",
        "--dotenv",
        str(tmp_path / "deploy.env"),
        "--marathon-url",
        marathon.url,
    )
    assert deployed.code == 0, deployed
    env = dict(line.split("=", 1) for line in (tmp_path / "deploy.env").read_text().splitlines())
    assert env["TREADLE_SERVER_GROUP"] == "web-prod-v001"
    destroyed = treadle(
        "destroy",
        "--cluster",
        "web-prod",
        "--target",
        "previous",
        "--marathon-url",
        marathon.url,
        env=env,
    )
    assert destroyed.code == 0, destroyed
    assert destroyed.result["server_group"] == "web-prod-v000"


def test_rolling_steps_from_a_placeholder_giving_a_list(tmp_path: Path) -> None:
    """--steps takes a list from the context as it takes `25,50,100`."""
    context = tmp_path / "plan.json"
    context.write_text('{"steps": [50, 100]}')
    with MarathonEmulator(**FAST) as marathon:
        args = ("--app", "web", "--marathon-url", marathon.url)
        assert treadle("deploy", *args, "--image", "web:1", "--instances", "2").code == 0
        rolled = treadle(
            "deploy",
            *args,
            "--image",
            "web:2",
            "--strategy",
            "rolling-red-black",
            "--steps",
            "{{ plan.steps }}",
            "--context",
            f"plan={context}",
        )
    assert rolled.code == 0, rolled
    assert rolled.result is not None and rolled.result["server_group"] == "web-v001"
