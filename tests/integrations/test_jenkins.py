"""vars/treadle.groovy, the Jenkins shared library, in real Groovy: a harness
(jenkins/Harness.groovy) gives it Jenkins' steps (sh runs for real, readJSON,
withCredentials, input, ...) and runs scripted pipelines that reach the Marathon and
Metronome emulators, which demand the token that only withCredentials hands over."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ci_variables import EXPECTED, JENKINS
from emulator import MarathonEmulator, MetronomeEmulator, Token
from helpers import treadle
from on_marathon.schemas import app_definition_validator, job_definition_validator

from .running import ROOT

HARNESS = Path(__file__).parent / "jenkins"
SECRET = "dcos-t0ken-4d1f"
REGION = "/prod"
FAILING = "registry.example/web:crashes"
# What a parameter might hold: a pull request's title, a commit message.
HOSTILE = 'it\'s "quoted" $(touch PWNED1) `touch PWNED2`; touch PWNED3 | true && *\nline two'
# The build that deployed what the pipeline finds.
EARLIER = {
    **JENKINS,
    "BUILD_URL": "https://jenkins.example/job/web/job/main/11/",
    "BUILD_TAG": "jenkins-web-main-11",
    "GIT_COMMIT": "9c1185a5c5e9fc54612808977ee8f548b2258d31",
    "BUILD_USER_ID": "carol",
}
RUN_SECONDS = 120


@dataclass
class Build:
    code: int
    console: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.console.splitlines() if line.startswith("ERROR: ")]

    def __str__(self) -> str:
        return f"exit {self.code}\n{self.console}"


@pytest.fixture
def marathon() -> Any:
    with MarathonEmulator(
        deploy_seconds=0.05, task_start_seconds=0.05, health_seconds=0.05, auth=Token(SECRET)
    ) as emu:
        if folder := os.environ.get("TREADLE_SHARED_DATA"):
            emu.validators.append(app_definition_validator(Path(folder)))
        yield emu


@pytest.fixture
def metronome() -> Any:
    with MetronomeEmulator(step_seconds=0.02, run_seconds=0.1, auth=Token(SECRET)) as emu:
        if folder := os.environ.get("TREADLE_SHARED_DATA"):
            emu.validators.append(job_definition_validator(Path(folder)))
        yield emu


def build(
    groovy: tuple[str, dict[str, str]],
    treadle_bin: Path,
    workspace: Path,
    pipeline: str,
    **env: str,
) -> Build:
    """One build of `pipeline` in `workspace`, with Jenkins' variables and `env`."""
    workspace.mkdir(exist_ok=True)
    files = workspace.parent
    (files / "Jenkinsfile").write_text(pipeline)
    (files / "env.json").write_text(json.dumps({**JENKINS, **env}))
    (files / "credentials.json").write_text(json.dumps({"dcos-token": SECRET}))
    executable, java = groovy
    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("TREADLE_", "DCOS_"))}
    process_env["PATH"] = f"{treadle_bin}{os.pathsep}{process_env['PATH']}"
    done = subprocess.run(
        [
            executable,
            "-cp",
            str(HARNESS / "stubs"),
            str(HARNESS / "Harness.groovy"),
            str(workspace),
            str(ROOT / "vars"),
            str(files / "Jenkinsfile"),
            str(files / "env.json"),
            str(files / "credentials.json"),
        ],
        env={**process_env, **java},
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        stdin=subprocess.DEVNULL,
    )
    return Build(done.returncode, done.stdout + done.stderr)


def read(workspace: Path, name: str) -> Any:
    return json.loads((workspace / name).read_text())


def job_posts(metronome: MetronomeEmulator) -> list[dict[str, Any]]:
    return [
        r.body
        for r in metronome.mutating_requests()
        if (r.method, r.path) == ("POST", "/v1/jobs")
        or (r.method == "PUT" and r.path.startswith("/v1/jobs/"))
    ]


def documented_pipeline() -> str:
    """The Jenkins pipeline of docs/ci.md, the block after its `tested:` marker."""
    text = (ROOT / "docs/ci.md").read_text()
    after = text.split("<!-- tested: tests/integrations/test_jenkins.py runs this pipeline -->")[1]
    return after.split("```groovy\n")[1].split("```")[0]


def test_find_image_deploy_run_job_and_a_rollback_after_the_input_step(
    groovy: tuple[str, dict[str, str]],
    treadle_bin: Path,
    marathon: MarathonEmulator,
    metronome: MetronomeEmulator,
    tmp_path: Path,
) -> None:
    seeded = treadle(
        "deploy", "--cluster", "web-prod", "--region", REGION, "--image",
        "registry.example/web:1.0", "--marathon-url", marathon.url, "--token", SECRET,
        env=EARLIER,
    )  # fmt: skip
    assert seeded.code == 0, seeded
    metronome.script("web.migrate", stdout="TREADLE_OUTPUT migrated=yes\n")
    workspace = tmp_path / "workspace"

    ran = build(
        groovy,
        treadle_bin,
        workspace,
        documented_pipeline(),
        MARATHON_URL=marathon.url,
        DCOS_URL=metronome.dcos_url,
        CHANGE_TITLE=HOSTILE,
    )
    assert ran.code == 0, ran
    assert ran.console.rstrip().endswith("Finished: SUCCESS"), ran
    assert SECRET not in ran.console, "withCredentials masks, and no argument holds it"

    # find-image: who deployed what it found, from the earlier build's labels.
    assert (
        "found registry.example/web:1.0, deployed by carol in "
        "https://jenkins.example/job/web/job/main/11/" in ran.console
    )
    # deploy: this build's provenance, on the result and on the server group.
    deployed = read(workspace, "deploy.json")
    assert (deployed["server_group"], deployed["image"]) == (
        "web-prod-v001",
        "registry.example/web:2.0",
    )
    assert deployed["provenance"] == EXPECTED["jenkins"]
    later = treadle(
        "find-image", "--cluster", "web-prod", "--region", REGION, "--include-disabled",
        "--marathon-url", marathon.url, "--token", SECRET,
    )  # fmt: skip
    assert later.result is not None and later.result["deployed"] == EXPECTED["jenkins"]

    # run-job: the pull request's title reached Metronome whole.
    [job] = job_posts(metronome)
    assert job["run"]["cmd"] == "./manage.py migrate"
    assert job["run"]["env"]["CHANGE_TITLE"] == HOSTILE
    assert job["run"]["env"]["SERVER_GROUP"] == "web-prod-v001"
    assert job["labels"]["treadle.run-url"] == EXPECTED["jenkins"]["run_url"]
    assert "migrated: yes" in ran.console
    assert not list(workspace.glob("PWNED*")) and not list(tmp_path.glob("PWNED*"))

    # The manual judgment, then the rollback.
    console = ran.console.splitlines()
    asked = console.index("Input requested: Roll web-prod back from web-prod-v001?")
    assert console[asked + 1] == "Approved by the harness"
    assert "serving again: web-prod-v000" in console
    assert read(workspace, "treadle-rollback.json")["disabled_server_groups"] == ["web-prod-v001"]


def test_a_failed_stage_fails_the_build_with_its_one_line_error_and_keeps_the_result(
    groovy: tuple[str, dict[str, str]],
    treadle_bin: Path,
    marathon: MarathonEmulator,
    tmp_path: Path,
) -> None:
    marathon.failing_images.add(FAILING)
    pipeline = """
    try {
      treadle.deploy(cluster: 'web-prod', region: '/prod', image: env.FAILING,
          rollbackOnFailure: true, timeout: '20s', marathonUrl: env.MARATHON_URL,
          credentialsId: 'dcos-token')
    } catch (failure) {
      kept = treadle.lastResult()
      echo "kept: ${kept.status} ${kept.server_group} rolled back: ${kept.rolled_back}"
      throw failure
    }
    """
    workspace = tmp_path / "workspace"
    ran = build(
        groovy, treadle_bin, workspace, pipeline, MARATHON_URL=marathon.url, FAILING=FAILING
    )
    assert ran.code == 1, ran
    [error] = ran.errors
    result = read(workspace, "treadle-deploy.json")
    message = " ".join(result["error"]["message"].split())
    assert error == f"ERROR: treadle deploy: {message} (exit 1; result in treadle-deploy.json)"
    assert "kept: failed web-prod-v000 rolled back: true" in ran.console, ran
    assert ran.console.rstrip().endswith("Finished: FAILURE")


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (
            "strategi: 'red-black'",
            "ERROR: treadle deploy: unknown parameter strategi (deploy takes ",
        ),
        (
            f"token: '{SECRET}'",
            "ERROR: treadle deploy: pass token with credentialsId (withCredentials), "
            "never as a parameter",
        ),
    ],
    ids=["not-an-option", "a-secret"],
)
def test_a_parameter_the_stage_does_not_take_stops_the_build_before_anything_runs(
    groovy: tuple[str, dict[str, str]],
    treadle_bin: Path,
    tmp_path: Path,
    parameters: str,
    message: str,
) -> None:
    pipeline = (
        f"treadle.deploy(cluster: 'web-prod', image: 'registry.example/web:2.0', {parameters})"
    )
    ran = build(groovy, treadle_bin, tmp_path / "workspace", pipeline)
    assert ran.code == 1, ran
    [error] = ran.errors
    assert error.startswith(message), ran
    assert not [line for line in ran.console.splitlines() if line.startswith("+ ")], "no sh ran"
