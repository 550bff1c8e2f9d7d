""".gitlab-ci-template.yml in a pipeline run by gitlab-ci-local, GitLab's pipeline runner
for a laptop: find-image hands what it found to deploy through its dotenv report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dockerish import IMAGE, IMAGE_V2, treadle_on_engine, unavailable

from .running import ROOT

TEMPLATE = ".gitlab-ci-template.yml"
# gitlab-ci-local runs a job that names an image in a container, next to a helper image
# that no registry here can give; a job without one runs in a shell, with the treadle under
# test on PATH. `image: null` takes the template's image away, as it does on GitLab.
PIPELINE = f"""
include:
  - local: {TEMPLATE}
stages: [find, deploy]
find-image:
  extends: .treadle-find-image
  image: null
  stage: find
  variables:
    TREADLE_ARGS: --cluster web-prod --region $REGION
deploy:
  extends: .treadle-deploy
  image: null
  stage: deploy
  needs: [find-image]
  script:
    - treadle deploy --cluster web-prod --region "$REGION" --image "$TREADLE_REPOSITORY:2" --strategy red-black
"""
PIPELINE_SECONDS = 300
# Variables of the machine running the tests that must not reach the pipeline's jobs.
FOREIGN = ("TREADLE_", "GITLAB_", "CI_", "GITHUB_")


@pytest.fixture(scope="session")
def gitlab_ci_local() -> str:
    found = shutil.which("gitlab-ci-local")
    if found is None:
        unavailable("gitlab-ci-local is missing: run .ci/ci-tools")
    return found


def run_pipeline(
    gitlab_ci_local: str, project: Path, **variables: str
) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "treadle").exists():
        pytest.fail(f"no treadle script beside {sys.executable}: pip install -e .", pytrace=False)
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    # The template is checked against GitLab's schema on its own (test_ci_files); the
    # schema has no `image: null`.
    command = [gitlab_ci_local, "--shell-executor-no-image", "--json-schema-validation=false"]
    command += [f"--variable={name}={value}" for name, value in variables.items()]
    return subprocess.run(
        command,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=PIPELINE_SECONDS,
        stdin=subprocess.DEVNULL,
    )


def git_project(folder: Path, files: dict[str, str]) -> Path:
    """gitlab-ci-local runs the pipeline of a git work tree."""
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    git = ["git", "-c", "user.name=treadle", "-c", "user.email=treadle@example.invalid"]
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "pipeline"]):
        subprocess.run([*git, *args], cwd=folder, check=True, capture_output=True)
    return folder


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def test_find_image_hands_the_repository_to_deploy_through_dotenv(
    gitlab_ci_local: str, region: str, tmp_path: Path
) -> None:
    first = treadle_on_engine(
        "deploy", "--cluster", "web-prod", "--image", IMAGE, "--region", region, "--timeout", "60s"
    )
    assert first.code == 0, first
    project = git_project(
        tmp_path / "project",
        {".gitlab-ci.yml": PIPELINE, TEMPLATE: (ROOT / TEMPLATE).read_text()},
    )

    ran = run_pipeline(gitlab_ci_local, project, REGION=region)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "PASS  find-image" in ran.stdout and "PASS  deploy" in ran.stdout

    found = read_json(project / "treadle-find-image.json")
    assert (found["status"], found["image"]) == ("succeeded", IMAGE)
    deployed = read_json(project / "treadle-deploy.json")
    assert (deployed["status"], deployed["image"]) == ("succeeded", IMAGE_V2)
    assert (deployed["server_group"], deployed["previous_server_group"]) == (
        "web-prod-v001",
        "web-prod-v000",
    )
    report = (project / "treadle.env").read_text().splitlines()
    assert "TREADLE_SERVER_GROUP=web-prod-v001" in report
    assert "TREADLE_STAGE=deploy" in report
