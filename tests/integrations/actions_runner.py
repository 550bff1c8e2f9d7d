"""GitHub's runner, for as much as it does with a Docker container action: it reads the
action.yml, turns the step's `with:` into INPUT_<NAME> variables, evaluates
`${{ inputs.x }}` in `runs.args` and `runs.env`, runs the image like

    docker run --workdir /github/workspace -v WORKSPACE:/github/workspace
      -v /var/run/docker.sock:/var/run/docker.sock -v ...:/github/file_commands
      -e INPUT_... -e GITHUB_OUTPUT=... -e GITHUB_ACTIONS=true --entrypoint ENTRYPOINT IMAGE ARGS

and then reads the file commands that later steps see: GITHUB_OUTPUT (`name=value`, or
`name<<DELIMITER` ... `DELIMITER`) and GITHUB_STEP_SUMMARY. (actions/runner:
ContainerActionHandler.cs, and the file-command parser in FileCommandManager.cs.)
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ci_variables import GITHUB

from .running import Ran, docker_run

_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_INPUT = re.compile(r"inputs\.([A-Za-z_][A-Za-z0-9_-]*)")


@dataclass
class Step:
    ran: Ran
    outputs: dict[str, str]
    summary: str

    @property
    def result(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.outputs["result"])
        return result

    def __str__(self) -> str:
        return f"{self.ran}\noutputs: {self.outputs}"


class ContainerAction:
    def __init__(self, manifest: Path, image: str, *, workspace: Path, socket: Path) -> None:
        self.manifest: dict[str, Any] = yaml.safe_load(manifest.read_text())
        runs = self.manifest["runs"]
        if runs["using"] != "docker":
            raise ValueError(f"{manifest}: not a Docker container action: {runs['using']}")
        # The runner would pull runs.image (docker://, the released image) or build it (a
        # Dockerfile): IMAGE, built from the Dockerfile, stands for either.
        self.image = image
        self.workspace, self.socket = workspace, socket
        self.home = workspace.parent / "_github_home"
        self.file_commands = workspace.parent / "_runner_file_commands"
        for folder in (workspace, self.home, self.file_commands):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def declared_outputs(self) -> set[str]:
        return set(self.manifest.get("outputs") or {})

    def inputs(self, given: dict[str, str]) -> dict[str, str]:
        declared: dict[str, Any] = self.manifest.get("inputs") or {}
        unexpected = set(given) - set(declared)
        if unexpected:
            raise ValueError(f"unexpected inputs: {sorted(unexpected)}")
        values = {
            name: str(given.get(name, spec.get("default", ""))) for name, spec in declared.items()
        }
        missing = [
            name for name, spec in declared.items() if spec.get("required") and not values[name]
        ]
        if missing:
            raise ValueError(f"required inputs missing: {missing}")
        return values

    def run(self, given: dict[str, str], *, env: dict[str, str] | None = None) -> Step:
        """One step: `uses: ./` with `with: given` and the step's `env:`."""
        inputs = self.inputs(given)
        runs = self.manifest["runs"]
        step_id = uuid.uuid4().hex
        output_file = self.file_commands / f"set_output_{step_id}"
        summary_file = self.file_commands / f"step_summary_{step_id}"
        output_file.touch()
        summary_file.touch()
        environment = {
            **(env or {}),
            **{f"INPUT_{name.replace(' ', '_').upper()}": value for name, value in inputs.items()},
            # What the runner sets in every step: the run, the commit, who started it.
            **GITHUB,
            "HOME": "/github/home",
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": "/github/workspace",
            "GITHUB_OUTPUT": f"/github/file_commands/{output_file.name}",
            "GITHUB_STEP_SUMMARY": f"/github/file_commands/{summary_file.name}",
        }
        # The action's own env fills in what the step's env did not set.
        for name, value in (runs.get("env") or {}).items():
            environment.setdefault(name, evaluate(str(value), inputs))
        options = [
            "--workdir",
            "/github/workspace",
            "-v",
            f"{self.socket}:/var/run/docker.sock",
            "-v",
            f"{self.home}:/github/home",
            "-v",
            f"{self.file_commands}:/github/file_commands",
            "-v",
            f"{self.workspace}:/github/workspace",
        ]
        if runs.get("entrypoint"):
            options += ["--entrypoint", runs["entrypoint"]]
        args = [evaluate(str(arg), inputs) for arg in runs.get("args") or []]
        ran = docker_run(self.image, *args, options=options, env=environment)
        return Step(ran, parse_file_command(output_file.read_text()), summary_file.read_text())


def evaluate(template: str, inputs: dict[str, str]) -> str:
    """`${{ inputs.name }}` expressions; anything else in `${{ }}` is more than this
    runner knows, and an error."""

    def value(match: re.Match[str]) -> str:
        expression = _INPUT.fullmatch(match.group(1))
        if expression is None:
            raise ValueError(f"unsupported expression {match.group(0)!r}")
        return inputs[expression.group(1)]

    return _EXPRESSION.sub(value, template)


def parse_file_command(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if not line:
            continue
        name, heredoc, delimiter = line.partition("<<")
        if heredoc and "=" not in name:
            body: list[str] = []
            for body_line in lines:
                if body_line == delimiter:
                    break
                body.append(body_line)
            else:
                raise ValueError(f"{name}: no closing delimiter {delimiter!r}")
            values[name] = "\n".join(body)
        else:
            name, equals, value = line.partition("=")
            if not equals:
                raise ValueError(f"not a file command line: {line!r}")
            values[name] = value
    return values
