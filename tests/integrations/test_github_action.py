"""action.yml, run by the image exactly as GitHub's runner runs a Docker container action:
the outputs later steps read, the summary, the log's workflow commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ci_variables import EXPECTED
from dockerish import IMAGE, IMAGE_V2, treadle_on_engine

from .actions_runner import ContainerAction
from .running import ROOT

SECRET = "s3cr3t-token-7f2c"


@pytest.fixture
def action(treadle_image: str, docker_socket: Path, tmp_path: Path) -> ContainerAction:
    return ContainerAction(
        ROOT / "action.yml", treadle_image, workspace=tmp_path / "workspace", socket=docker_socket
    )


def test_steps_chain_deploy_find_image_and_a_red_black_deploy_through_outputs(
    action: ContainerAction, region: str
) -> None:
    first = action.run(
        {
            "stage": "deploy",
            "cluster": "web-prod",
            "image": IMAGE,
            "region": region,
            "timeout": "60s",
        }
    )
    assert first.ran.code == 0, first
    assert first.outputs["status"] == "succeeded"
    assert first.outputs["server_group"] == "web-prod-v000"
    assert first.outputs["instances"] == "1"
    assert first.result["server_group"] == "web-prod-v000"
    assert set(first.outputs) <= action.declared_outputs, "every output is declared"

    found = action.run({"stage": "find-image", "cluster": "web-prod", "region": region})
    assert found.ran.code == 0, found
    assert (found.outputs["image"], found.outputs["repository"], found.outputs["tag"]) == (
        IMAGE,
        "treadle-test/busybox",
        "1",
    )
    assert set(found.outputs) <= action.declared_outputs

    # image: ${{ steps.found.outputs.repository }}:2, more flags through `args`, and the
    # result in a workspace file for a later step's --context.
    second = action.run(
        {
            "stage": "deploy",
            "cluster": "web-prod",
            "region": region,
            "image": f"{found.outputs['repository']}:2",
            "strategy": "red-black",
            "args": "--max-remaining 1 --timeout 60s",
            "output": "deploy.json",
        }
    )
    assert second.ran.code == 0, second
    assert second.outputs["server_group"] == "web-prod-v001"
    assert second.outputs["image"] == IMAGE_V2
    assert second.outputs["previous_server_group"] == "web-prod-v000"
    assert second.result["disabled_server_groups"] == ["web-prod-v000"]
    assert json.loads((action.workspace / "deploy.json").read_text()) == second.result
    assert second.ran.stdout == "", "the result went to the file"

    log = second.ran.stderr.splitlines()
    start = log.index("::group::waiting for web-prod-v001")
    assert "web-prod-v001: 1/1 healthy" in log[start : log.index("::endgroup::")]
    assert second.summary.startswith("### ✅ treadle deploy: succeeded\n")
    assert "| disabled_server_groups | `web-prod-v000` |" in second.summary


def test_a_refused_step_is_an_error_annotation_and_a_summary_that_says_why(
    action: ContainerAction, region: str
) -> None:
    deployed = treadle_on_engine(
        "deploy", "--cluster", "web-prod", "--image", IMAGE, "--region", region, "--timeout", "60s"
    )
    assert deployed.code == 0, deployed

    step = action.run(
        {"stage": "destroy", "cluster": "web-prod", "target": "newest", "region": region}
    )
    assert step.ran.code == 3, step
    errors = [line for line in step.ran.stderr.splitlines() if line.startswith("::error::")]
    assert errors == [
        "::error::refusing to destroy web-prod-v000: it is the last enabled server group of "
        f"web-prod in {region} and serves traffic (--force to do it anyway)"
    ]
    assert (step.outputs["status"], step.outputs["error_type"]) == ("refused", "Refused")
    assert step.summary.startswith("### ⛔ treadle destroy: refused\n")
    assert "**Refused**" in step.summary


def test_a_token_is_masked_before_anything_prints(action: ContainerAction) -> None:
    # A Marathon that does not answer (nothing listens on the container's own loopback).
    step = action.run(
        {
            "stage": "find-image",
            "cluster": "web-prod",
            "marathon_url": "http://127.0.0.1:9",
            "token": SECRET,
            "timeout": "5s",
        }
    )
    assert step.ran.code == 4, step
    log = step.ran.stderr.splitlines()
    assert log[0] == f"::add-mask::{SECRET}", "masked before any other line"
    everything_else = [*log[1:], step.ran.stdout, *step.outputs.values(), step.summary]
    assert not [text for text in everything_else if SECRET in text]
    assert len([line for line in log if line.startswith("::error::")]) == 1, step


def test_a_deploy_step_gives_the_environment_url_and_find_image_says_who_deployed(
    action: ContainerAction, region: str
) -> None:
    (action.workspace / "web.yaml").write_text("ports: ['80']\n")
    deployed = action.run(
        {
            "stage": "deploy",
            "cluster": "web-prod",
            "image": IMAGE,
            "region": region,
            "spec": "web.yaml",
            "timeout": "60s",
        }
    )
    assert deployed.ran.code == 0, deployed
    [endpoint] = deployed.result["endpoints"]
    # environment: { name: production, url: ${{ steps.deploy.outputs.environment_url }} }
    assert deployed.outputs["environment_url"] == f"http://{endpoint}"
    assert f"| environment_url | `http://{endpoint}` |" in deployed.summary
    assert deployed.result["provenance"] == EXPECTED["github"]
    assert set(deployed.outputs) <= action.declared_outputs

    found = action.run({"stage": "find-image", "cluster": "web-prod", "region": region})
    assert found.ran.code == 0, found
    for field, value in EXPECTED["github"].items():
        assert found.outputs[f"deployed_{field}"] == value
    assert "| deployed_actor | `octocat` |" in found.summary
    assert set(found.outputs) <= action.declared_outputs
