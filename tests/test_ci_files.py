"""action.yml and .gitlab-ci-template.yml: valid against the public schemas that GitHub's
and GitLab's editors use (SchemaStore's, shipped with check-jsonschema, offline), and in
step with the CLI they call. tests/integrations runs them for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from treadle import __version__
from treadle.cli import app

ROOT = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text())
TEMPLATE = yaml.safe_load((ROOT / ".gitlab-ci-template.yml").read_text())
# The CI/CD component: its `spec:` header, then its job.
SPEC, COMPONENT = yaml.safe_load_all((ROOT / "templates/treadle.yml").read_text())
INPUTS: dict[str, Any] = SPEC["spec"]["inputs"]
COMMANDS: dict[str, Any] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
# Inputs that the action's entrypoint passes itself rather than through TREADLE_*.
ENTRYPOINT_INPUTS = {"stage", "args"}


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("action.yml", "vendor.github-actions"),
        (".gitlab-ci-template.yml", "vendor.gitlab-ci"),
        (".github/workflows/release.yml", "vendor.github-workflows"),
        ("examples/canary/github-workflow.yml", "vendor.github-workflows"),
        ("examples/canary/gitlab-ci.yml", "vendor.gitlab-ci"),
    ],
)
def test_validates_against_the_public_schema(path: str, schema: str) -> None:
    check_schema(schema, ROOT / path)


def check_schema(schema: str, path: Path) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_action_input_sets_the_option_it_is_named_after() -> None:
    """An input reaches treadle as TREADLE_<INPUT>, which the option of that name reads;
    an empty input sets an empty variable, which treadle ignores."""
    options = {
        opt for command in COMMANDS.values() for param in command.params for opt in param.opts
    }
    env: dict[str, str] = ACTION["runs"]["env"]
    named = set(ACTION["inputs"]) - ENTRYPOINT_INPUTS
    assert set(env) == {f"TREADLE_{name.upper()}" for name in named}
    for name in named:
        assert env[f"TREADLE_{name.upper()}"] == f"${{{{ inputs.{name} }}}}", name
        assert f"--{name.replace('_', '-')}" in options, f"input {name}: no such option"


# --- the released image that the action runs --------------------------------------------------

RELEASE = yaml.safe_load((ROOT / ".github/workflows/release.yml").read_text())


def test_the_action_runs_the_image_that_the_release_workflow_pushes_for_this_version() -> None:
    image = RELEASE["env"]["IMAGE"]
    assert ACTION["runs"]["image"] == f"docker://{image}:{__version__}"
    assert image.startswith("ghcr.io/") and image == image.lower(), "ghcr.io takes lower case"
    [build] = [
        s for s in RELEASE["jobs"]["image"]["steps"] if "build-push-action" in s.get("uses", "")
    ]
    assert build["with"]["push"] is True
    assert "linux/amd64" in build["with"]["platforms"]
    # The same owner as the README's `uses: your-org/treadle@v0`.
    assert f"uses: {image.removeprefix('ghcr.io/')}@v0" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    ("tag", "agrees"), [(f"v{__version__}", True), ("v9.9.9", False)], ids=["this", "another"]
)
def test_the_release_stops_when_the_tag_is_not_the_version_the_action_runs(
    tag: str, agrees: bool
) -> None:
    [check] = [
        s for s in RELEASE["jobs"]["image"]["steps"] if s.get("name", "").startswith("The tag")
    ]
    ran = subprocess.run(
        ["bash", "-e", "-c", check["run"]],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "GITHUB_REF_NAME": tag, "IMAGE": RELEASE["env"]["IMAGE"]},
        capture_output=True,
        text=True,
    )
    assert (ran.returncode == 0) is agrees, ran.stdout + ran.stderr
    if not agrees:
        assert ran.stdout.startswith("::error::"), ran.stdout


def test_the_action_names_every_stage() -> None:
    described = ACTION["inputs"]["stage"]["description"]
    assert all(stage in described for stage in COMMANDS)


def test_the_template_has_a_hidden_job_for_every_stage() -> None:
    for stage in COMMANDS:
        job = TEMPLATE[f".treadle-{stage}"]
        assert job["extends"] == ".treadle"
        assert job["script"] == [f"treadle {stage} $TREADLE_ARGS"]


# --- the CI/CD component ---------------------------------------------------------------------


def test_the_components_header_validates_against_the_public_schema(tmp_path: Path) -> None:
    header = tmp_path / "spec.yml"
    header.write_text(yaml.safe_dump(SPEC))
    check_schema("vendor.gitlab-ci", header)


def test_the_component_offers_every_stage_and_every_input_is_documented() -> None:
    # The app's commands are registered as their modules are first imported: any order.
    assert sorted(INPUTS["command"]["options"]) == sorted(COMMANDS)
    assert all(spec.get("description") for spec in INPUTS.values())
    for name, spec in INPUTS.items():
        if "default" in spec:
            kind = {"boolean": bool, "number": int}.get(spec.get("type", "string"), str)
            assert isinstance(spec["default"], kind), f"{name}: default of the wrong type"
            assert spec["default"] in spec.get("options", [spec["default"]]), name


def test_every_component_input_is_used_and_reaches_the_option_it_is_named_after() -> None:
    """String inputs through a TREADLE_INPUT_<NAME> variable, passed as --<name>; typed
    inputs straight into the script; the rest into the job's own keys."""
    [job] = COMPONENT.values()
    text = yaml.safe_dump(COMPONENT)
    options = {
        opt for command in COMMANDS.values() for param in command.params for opt in param.opts
    }
    for name in INPUTS:
        assert f"$[[ inputs.{name} ]]" in text, f"input {name} is never used"
    for variable, value in job["variables"].items():
        name = variable.removeprefix("TREADLE_INPUT_").lower()
        assert value == f"$[[ inputs.{name} ]]", variable
        assert f"${variable}" in job["script"][0], f"{variable} is never passed"
        if name != "args":
            flag = f"--{name.replace('_', '-')}"
            assert flag in options, f"input {name}: no such option"
            assert f'{flag} "$' in job["script"][0], f"{flag} is never given"


def test_the_component_deploys_to_an_environment_with_a_resource_group_per_cluster() -> None:
    [job] = COMPONENT.values()
    assert job["environment"] == {
        "name": "$[[ inputs.environment ]]",
        "action": "$[[ inputs.environment_action ]]",
        "url": "$TREADLE_ENVIRONMENT_URL",
    }
    assert "$[[ inputs.cluster ]]" in job["resource_group"]
    assert job["artifacts"]["reports"]["dotenv"] == "treadle.env"
    assert job["artifacts"]["when"] == "always"


# --- the Jenkins library ----------------------------------------------------------------------

LIBRARY = (ROOT / "vars/treadle.groovy").read_text()
# Never parameters of the library: secrets come through withCredentials.
SECRET_OPTIONS = {"--token", "--password"}


def groovy_list(text: str) -> set[str]:
    return set(re.findall(r"'([a-z][a-z0-9-]*)'", text))


def library_options() -> dict[str, set[str]]:
    """What vars/treadle.groovy lets each stage take, as flags."""
    common = groovy_list(re.search(r"List COMMON = \[(.*?)\]", LIBRARY, re.S)[1])
    changes = groovy_list(re.search(r"List CHANGES = \[(.*?)\]", LIBRARY, re.S)[1])
    table = re.search(r"Map STAGES = \[(.*?)\n\]", LIBRARY, re.S)[1]
    stages = {}
    for stage, plus, names in re.findall(r"'([a-z-]+)': (CHANGES \+ )?\[(.*?)\]", table, re.S):
        taken = common | groovy_list(names) | (changes if plus else set())
        stages[stage] = {f"--{name}" for name in taken}
    return stages


def test_the_library_lets_each_stage_take_exactly_its_options() -> None:
    stages = library_options()
    assert sorted(stages) == sorted(COMMANDS)
    for stage, command in COMMANDS.items():
        flags = {opt for param in command.params for opt in param.opts if opt.startswith("--")}
        assert stages[stage] == flags - SECRET_OPTIONS, stage


def test_the_library_has_a_method_per_stage() -> None:
    for stage in COMMANDS:
        method = re.sub(r"-([a-z])", lambda m: m[1].upper(), stage)
        line = f"Map {method}(Map parameters = [:]) {{ run('{stage}', parameters) }}"
        assert line in LIBRARY, stage


# --- the documented pipelines --------------------------------------------------------------

DOCUMENTS = ["docs/ci.md", "examples/Jenkinsfile", "vars/treadle.groovy", ".gitlab-ci-template.yml"]
_STAGE = re.compile(rf"\btreadle ({'|'.join(map(re.escape, COMMANDS))})\b")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


def invocations(text: str) -> list[tuple[str, str]]:
    """Each `treadle STAGE ...` command: the stage, and its arguments up to the end of its
    line and of the lines that continue it (after a `\\`, or starting with a flag)."""
    lines = text.splitlines()
    found = []
    for number, line in enumerate(lines):
        for match in _STAGE.finditer(line):
            words = [line[match.end() :]]
            for following in lines[number + 1 :]:
                if not (words[-1].rstrip().endswith("\\") or following.lstrip().startswith("--")):
                    break
                words.append(following)
            found.append((match.group(1), " ".join(words)))
    return found


def test_documented_commands_use_options_their_stage_has() -> None:
    commands = [
        (document, stage, args)
        for document in DOCUMENTS
        for stage, args in invocations((ROOT / document).read_text())
    ]
    assert len(commands) >= 10
    for document, stage, args in commands:
        options = {opt for param in COMMANDS[stage].params for opt in param.opts}
        unknown = set(_FLAG.findall(args)) - options
        assert not unknown, f"{document}: treadle {stage} has no {sorted(unknown)}"


def documented_pipelines(key: str) -> list[str]:
    """The YAML blocks of docs/ci.md with `key` at their top."""
    blocks: list[str] = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs/ci.md").read_text(), re.S)
    return [block for block in blocks if key in yaml.safe_load(block)]


@pytest.mark.parametrize(
    ("key", "schema", "count"),
    [("jobs", "vendor.github-workflows", 1), ("include", "vendor.gitlab-ci", 2)],
)
def test_documented_pipelines_validate(key: str, schema: str, count: int, tmp_path: Path) -> None:
    pipelines = documented_pipelines(key)
    assert len(pipelines) == count
    for number, text in enumerate(pipelines):
        pipeline = tmp_path / f"pipeline-{number}.yml"
        pipeline.write_text(text)
        check_schema(schema, pipeline)


def test_the_documented_workflow_gives_the_action_only_its_inputs() -> None:
    [text] = documented_pipelines("jobs")
    workflow = yaml.safe_load(text)
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    ours = [step for step in steps if "/treadle@" in step.get("uses", "")]
    assert len(ours) == 4
    for step in ours:
        assert set(step["with"]) <= set(ACTION["inputs"]), step["id"]
    # The manual judgment: a job in an environment (with required reviewers, set on GitHub).
    assert workflow["jobs"]["production"]["environment"]["name"] == "production"


def test_the_documented_component_pipeline_gives_each_include_valid_inputs() -> None:
    pipelines = [yaml.safe_load(text) for text in documented_pipelines("include")]
    [pipeline] = [p for p in pipelines if "component" in p["include"][0]]
    required = {name for name, spec in INPUTS.items() if "default" not in spec}
    commands = []
    for include in pipeline["include"]:
        assert include["component"].endswith("/treadle/treadle@0.1.0")
        inputs = include["inputs"]
        assert required <= set(inputs) <= set(INPUTS), inputs
        for name, value in inputs.items():
            spec = INPUTS[name]
            kind = {"boolean": bool, "number": int}.get(spec.get("type", "string"), str)
            assert isinstance(value, kind) and value in spec.get("options", [value]), name
        commands.append(inputs["command"])
    assert commands == ["find-image", "deploy", "run-job", "rollback"]
    assert pipeline["include"][-1]["inputs"]["when"] == "manual"


def test_the_canary_workflow_gives_the_action_only_its_inputs() -> None:
    """examples/canary/github-workflow.yml, which GitHub alone can run: every step of ours
    passes inputs the action has, and stages that exist."""
    workflow = yaml.safe_load((ROOT / "examples/canary/github-workflow.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    ours = [step for step in steps if "/treadle@" in step.get("uses", "")]
    assert [step["with"]["stage"] for step in ours] == [
        "deploy",
        "verify",
        "${{ inputs.decision }}",
    ]
    for step in ours:
        assert set(step["with"]) <= set(ACTION["inputs"]), step
    # YAML 1.1 reads the key `on` as true.
    triggers = workflow.get("on", workflow.get(True))
    decisions = triggers["workflow_dispatch"]["inputs"]["decision"]["options"]
    assert set(decisions) <= set(COMMANDS)
    assert workflow["jobs"]["decide"]["environment"] == "production"
