"""templates/treadle.yml, the CI/CD component, in pipelines run by gitlab-ci-local as a
local component include (`component: HOST/GROUP/PROJECT/treadle@SHA`, matching the test
project's git remote and commit): find-image -> deploy -> a smoke-test job chained through
dotenv reports, then the manual rollback job; a hostile value in an input stays a value;
inputs of the wrong type or outside their options stop the pipeline with GitLab's message,
and an input the stage does not take with treadle's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from dockerish import IMAGE, IMAGE_V2, remove_labelled, treadle_on_engine

from treadle.providers.engine.jobs import LABEL_JOB

from .gitlab import USER, dotenv_report, git, git_project, read_json, run_pipeline
from .running import ROOT

COMPONENT = "templates/treadle.yml"
HOST, PROJECT = "gitlab.example", "acme/treadle"
REMOTE = f"git@{HOST}:{PROJECT}.git"
# The deployed containers serve on a published port: the result's endpoint is the
# environment's URL.
SPEC = {"ports": ["80"]}
# What a pipeline variable (a branch name, a commit message) might hold.
HOSTILE = """it's "quoted" $(touch PWNED1) `touch PWNED2`; touch PWNED3 | true && * \\ end"""


def chain(sha: str) -> str:
    """The pipeline a GitLab project would hold: four includes of the component."""
    component = f"{HOST}/{PROJECT}/treadle@{sha}"
    common = {"environment": "production", "cluster": "web-prod", "region": "$REGION"}
    includes: list[dict[str, Any]] = [
        {
            "command": "find-image",
            "job_name": "find-image",
            "job_stage": "find",
            "environment_action": "access",
            **common,
        },
        {
            "command": "deploy",
            "job_name": "deploy",
            # What a project writes; see .gitlab-ci-local.yml below.
            "image": "$TREADLE_REPOSITORY:2",
            "spec": "web.yaml",
            "strategy": "red-black",
            "rollback_on_failure": True,
            "instances": 1,
            "timeout": 60,
            **common,
        },
        {
            "command": "run-job",
            "job_name": "smoke-test",
            "job_stage": "verify",
            "environment": "production",
            "environment_action": "verify",
            "job_id": "$SMOKE_JOB",
            "image": "$TREADLE_IMAGE",
            "cmd": 'echo "TREADLE_OUTPUT note=$$NOTE"; echo "TREADLE_OUTPUT checked=yes"',
            "env": "NOTE=$HOSTILE",
            "timeout": 60,
        },
        {
            "command": "rollback",
            "job_name": "rollback",
            "job_stage": "rollback",
            "when": "manual",
            **common,
        },
    ]
    pipeline = {
        "stages": ["find", "deploy", "verify", "rollback"],
        "include": [{"component": component, "inputs": inputs} for inputs in includes],
        "deploy": {"needs": ["find-image"]},
        "smoke-test": {"needs": ["deploy"]},
        "rollback": {"needs": ["deploy"]},
    }
    return yaml.safe_dump(pipeline, sort_keys=False)


# gitlab-ci-local only: the jobs run in a shell, and the inputs that name a dotenv variable
# are set again when the job starts. gitlab-ci-local 4.56.2 expands a job's `variables:`
# before it reads the dotenv reports of the jobs it needs (firecow/gitlab-ci-local#1492,
# fixed in versions that need Node 22); GitLab expands them when the job starts.
LOCAL = """
find-image: {image: null}
deploy:
  image: null
  before_script: ['export TREADLE_INPUT_IMAGE="$TREADLE_REPOSITORY:2"']
smoke-test:
  image: null
  before_script: ['export TREADLE_INPUT_IMAGE="$TREADLE_IMAGE"']
rollback: {image: null}
"""


def component_project(folder: Path, pipeline: Any, files: dict[str, str] | None = None) -> Path:
    """A project whose remote and commit make `pipeline(sha)`'s component include local;
    the pipeline itself is written after the commit that it names."""
    sha = git_project(
        folder, {COMPONENT: (ROOT / COMPONENT).read_text(), **(files or {})}, remote=REMOTE
    )
    (folder / ".gitlab-ci.yml").write_text(pipeline(sha))
    return folder


@pytest.fixture
def smoke_job(engine: Any) -> Iterator[str]:
    job_id = "t" + uuid.uuid4().hex[:8]
    yield job_id
    remove_labelled(engine, f"{LABEL_JOB}={job_id}")


def test_find_image_deploy_and_a_smoke_test_chain_through_dotenv_then_a_manual_rollback(
    gitlab_ci_local: str, treadle_bin: Path, region: str, smoke_job: str, tmp_path: Path
) -> None:
    spec = yaml.safe_dump(SPEC)
    (tmp_path / "web.yaml").write_text(spec)
    first = treadle_on_engine(
        "deploy", "--cluster", "web-prod", "--image", IMAGE, "--region", region,
        "--spec", str(tmp_path / "web.yaml"), "--timeout", "60s",
    )  # fmt: skip
    assert first.code == 0, first
    project = component_project(tmp_path / "project", chain, {"web.yaml": spec})
    variables = {"REGION": region, "SMOKE_JOB": smoke_job, "HOSTILE": HOSTILE}

    # GitLab's schema holds for the pipeline as GitLab would see it.
    listed = run_pipeline(gitlab_ci_local, project, treadle_bin, "--list", validate=True)
    assert listed.code == 0, listed
    assert "rollback" in listed.stdout and "manual" in listed.stdout

    (project / ".gitlab-ci-local.yml").write_text(LOCAL)
    # As on GitLab (gitlab-ci-local says GITLAB_CI=false): the deploy's provenance.
    ran = run_pipeline(gitlab_ci_local, project, treadle_bin, GITLAB_CI="true", **variables)
    assert ran.code == 0, ran
    assert [job for job in ("find-image", "deploy", "smoke-test") if ran.passed(job)] == [
        "find-image",
        "deploy",
        "smoke-test",
    ], ran
    assert not ran.passed("rollback"), "a manual job waits for a person"

    found = read_json(project / "treadle-find-image.json")
    assert (found["server_group"], found["repository"]) == ("web-prod-v000", "treadle-test/busybox")
    deployed = read_json(project / "treadle-deploy.json")
    assert (deployed["server_group"], deployed["image"]) == ("web-prod-v001", IMAGE_V2)
    assert deployed["disabled_server_groups"] == ["web-prod-v000"]
    report = dotenv_report(project, "deploy")
    assert report["TREADLE_IMAGE"] == IMAGE_V2
    assert report["TREADLE_ENVIRONMENT_URL"] == f"http://{deployed['endpoints'][0]}"
    assert "environment: { name: production" in ran.stdout

    smoke = read_json(project / "treadle-smoke-test.json")
    assert (smoke["status"], smoke["job_id"]) == ("succeeded", smoke_job)
    assert smoke["outputs"] == {"note": HOSTILE, "checked": "yes"}, "a value stays a value"
    assert not list(project.glob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))

    # Who deployed web-prod-v001, read later from anywhere: this pipeline's deploy job.
    commit = git(project, "rev-parse", "HEAD")
    later = treadle_on_engine("find-image", "--cluster", "web-prod", "--region", region)
    assert later.result is not None
    assert later.result["deployed"]["ci"] == "gitlab"
    assert later.result["deployed"]["run_url"].startswith(f"https://{HOST}/{PROJECT}/-/jobs/")
    assert later.result["deployed"]["commit"] == commit
    assert later.result["deployed"]["actor"] == USER[1].split("@")[0]

    # A person judges the deploy bad and runs the manual job.
    rolled = run_pipeline(gitlab_ci_local, project, treadle_bin, "rollback", **variables)
    assert rolled.code == 0 and rolled.passed("rollback"), rolled
    back = read_json(project / "treadle-rollback.json")
    assert (back["status"], back["server_group"]) == ("succeeded", "web-prod-v000")
    assert back["disabled_server_groups"] == ["web-prod-v001"]


# --- bad input ------------------------------------------------------------------------------


def one_job(**inputs: Any) -> Any:
    def pipeline(sha: str) -> str:
        include = {
            "component": f"{HOST}/{PROJECT}/treadle@{sha}",
            "inputs": {"job_name": "probe", "environment": "production", **inputs},
        }
        return yaml.safe_dump({"include": [include]}, sort_keys=False)

    return pipeline


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (
            {"command": "deploy", "instances": "two"},
            "`instances` input: provided value is not a number",
        ),
        (
            {"command": "deploy", "rollback_on_failure": "yes"},
            "`rollback_on_failure` input: provided value is not a boolean",
        ),
        (
            {"command": "deploy", "strategy": "blue-green"},
            "`strategy` input: `blue-green` cannot be used because it is not in the list of "
            "allowed options",
        ),
        (
            {"command": "verify-all"},
            "`command` input: `verify-all` cannot be used because it is not in the list",
        ),
        ({"command": "deploy", "job_name": ""}, "`job_name` input: required value"),
    ],
    ids=["number", "boolean", "option", "command", "required"],
)
def test_an_input_of_the_wrong_type_stops_the_pipeline_with_gitlabs_message(
    gitlab_ci_local: str, treadle_bin: Path, tmp_path: Path, inputs: dict[str, Any], message: str
) -> None:
    project = component_project(tmp_path / "project", one_job(**inputs))
    listed = run_pipeline(gitlab_ci_local, project, treadle_bin, "--list")
    assert listed.code != 0, listed
    assert message in listed.output, listed


def test_an_input_the_stage_does_not_take_is_refused_by_treadle(
    gitlab_ci_local: str, treadle_bin: Path, tmp_path: Path
) -> None:
    project = component_project(
        tmp_path / "project",
        one_job(command="find-image", cluster="web-prod", strategy="red-black"),
    )
    (project / ".gitlab-ci-local.yml").write_text("probe: {image: null}\n")
    ran = run_pipeline(gitlab_ci_local, project, treadle_bin)
    assert ran.code != 0 and not ran.passed("probe"), ran
    assert "No such option: --strategy" in ran.output, ran
    assert "exit code 2" in ran.output or "FAIL 2" in ran.output, ran
