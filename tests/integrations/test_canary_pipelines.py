"""examples/canary/, the canary pipelines the README points to, run as each CI system runs
them on the local Docker engine: GitLab's (the component, by gitlab-ci-local) deploys the
canary and checks it, then its manual promote job grows it; Jenkins' (the shared library,
in the Groovy harness) does the same and, when the person rejects the input, aborts it.
(GitHub's workflow is held to the action's inputs in tests/test_ci_files.py.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from dockerish import IMAGE, IMAGE_V2, treadle_on_engine

from .gitlab import git_project, read_json, run_pipeline
from .running import ROOT
from .test_gitlab_component import COMPONENT, HOST, PROJECT, REMOTE
from .test_jenkins import build

EXAMPLES = ROOT / "examples" / "canary"
# The containers serve on a published port, which verify reaches.
SPEC = {"ports": ["80"]}


def seed(region: str, network: str, tmp_path: Path) -> None:
    """What serves before the pipeline: web-prod-v000, two instances on the network."""
    (tmp_path / "seed.yaml").write_text(yaml.safe_dump(SPEC))
    first = treadle_on_engine(
        "deploy", "--cluster", "web-prod", "--image", IMAGE, "--region", region,
        "--spec", str(tmp_path / "seed.yaml"), "--instances", "2", "--network", network,
        "--timeout", "60s",
    )  # fmt: skip
    assert first.code == 0, first


def test_gitlab_canary_then_the_manual_promote(
    gitlab_ci_local: str, treadle_bin: Path, engine: Any, region: str, tmp_path: Path
) -> None:
    network = f"{region}-net"
    seed(region, network, tmp_path)

    def pipeline(sha: str) -> str:
        text = (EXAMPLES / "gitlab-ci.yml").read_text()
        text = text.replace(
            "$CI_SERVER_FQDN/your-group/treadle/treadle@0.1.0", f"{HOST}/{PROJECT}/treadle@{sha}"
        )
        return text.replace("registry.example/web:$CI_COMMIT_SHORT_SHA", IMAGE_V2).replace(
            "web-net", network
        )

    project = tmp_path / "project"
    sha = git_project(
        project,
        {COMPONENT: (ROOT / COMPONENT).read_text(), "web.yaml": yaml.safe_dump(SPEC)},
        remote=REMOTE,
    )
    (project / ".gitlab-ci.yml").write_text(pipeline(sha))
    listed = run_pipeline(gitlab_ci_local, project, treadle_bin, "--list", validate=True)
    assert listed.code == 0, listed
    local = {job: {"image": None} for job in ("canary", "verify-canary", "promote", "abort")}
    (project / ".gitlab-ci-local.yml").write_text(yaml.safe_dump(local))
    variables = {"TREADLE_REGION": region}

    ran = run_pipeline(gitlab_ci_local, project, treadle_bin, **variables)
    assert ran.code == 0, ran
    assert ran.passed("canary") and ran.passed("verify-canary"), ran
    assert not ran.passed("promote") and not ran.passed("abort"), "manual jobs wait"
    canary = read_json(project / "treadle-canary.json")
    assert (canary["server_group"], canary["canary_instances"]) == ("web-prod-v001", 1)
    checked = read_json(project / "treadle-verify-canary.json")
    assert (checked["requests"], checked["succeeded"]) == (50, 50), checked
    assert checked["urls"] == [f"http://{e}/" for e in canary["endpoints"]]

    promoted = run_pipeline(gitlab_ci_local, project, treadle_bin, "promote", **variables)
    assert promoted.code == 0 and promoted.passed("promote"), promoted
    result = read_json(project / "treadle-promote.json")
    assert (result["server_group"], result["instances"]) == ("web-prod-v001", 2)
    assert result["disabled_server_groups"] == ["web-prod-v000"]


def test_jenkins_canary_aborted_when_the_input_is_rejected(
    groovy: tuple[str, dict[str, str]], treadle_bin: Path, region: str, tmp_path: Path
) -> None:
    network = f"{region}-net"
    seed(region, network, tmp_path)
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "web.yaml").write_text(yaml.safe_dump(SPEC))
    pipeline = (EXAMPLES / "Jenkinsfile").read_text()
    pipeline = pipeline.replace('"registry.example/web:${env.GIT_COMMIT}"', f"'{IMAGE_V2}'")
    pipeline = pipeline.replace("'web-net'", f"'{network}'")

    ran = build(
        groovy, treadle_bin, workspace, pipeline, TREADLE_REGION=region, HARNESS_INPUT="abort"
    )
    assert ran.code == 1, ran
    assert "web-prod-v001: 50 of 50 requests succeeded" in ran.console, ran
    assert "ERROR: Rejected by the harness" in ran.console, ran
    aborted = json.loads((workspace / "treadle-abort.json").read_text())
    assert (aborted["status"], aborted["server_group"]) == ("succeeded", "web-prod-v001")
    found = treadle_on_engine(
        "find-image", "--cluster", "web-prod", "--region", region, "--selection", "fail"
    )
    assert found.code == 0, found
    assert found.result is not None and found.result["server_group"] == "web-prod-v000"
