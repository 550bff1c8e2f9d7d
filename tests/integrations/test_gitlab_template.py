""".gitlab-ci-template.yml (for `include: project:` users) in a pipeline run by
gitlab-ci-local: find-image hands what it found to deploy through its dotenv report."""

from __future__ import annotations

from pathlib import Path

from dockerish import IMAGE, IMAGE_V2, treadle_on_engine

from .gitlab import dotenv_report, git_project, read_json, run_pipeline
from .running import ROOT

TEMPLATE = ".gitlab-ci-template.yml"
# `image: null` takes the template's image away, as it does on GitLab: the jobs run in a
# shell, with the treadle under test on PATH.
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


def test_find_image_hands_the_repository_to_deploy_through_dotenv(
    gitlab_ci_local: str, treadle_bin: Path, region: str, tmp_path: Path
) -> None:
    first = treadle_on_engine(
        "deploy", "--cluster", "web-prod", "--image", IMAGE, "--region", region, "--timeout", "60s"
    )
    assert first.code == 0, first
    project = tmp_path / "project"
    git_project(project, {".gitlab-ci.yml": PIPELINE, TEMPLATE: (ROOT / TEMPLATE).read_text()})

    ran = run_pipeline(gitlab_ci_local, project, treadle_bin, REGION=region)
    assert ran.code == 0, ran
    assert ran.passed("find-image") and ran.passed("deploy"), ran

    found = read_json(project / "treadle-find-image.json")
    assert (found["status"], found["image"]) == ("succeeded", IMAGE)
    deployed = read_json(project / "treadle-deploy.json")
    assert (deployed["status"], deployed["image"]) == ("succeeded", IMAGE_V2)
    assert (deployed["server_group"], deployed["previous_server_group"]) == (
        "web-prod-v001",
        "web-prod-v000",
    )
    report = dotenv_report(project, "deploy")
    assert report["TREADLE_SERVER_GROUP"] == "web-prod-v001"
    assert report["TREADLE_STAGE"] == "deploy"
