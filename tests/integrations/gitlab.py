"""gitlab-ci-local, GitLab's pipeline runner for a laptop, as these tests run it: in a git
work tree of the test's own, jobs in a shell with the treadle under test on PATH.

gitlab-ci-local runs a job that names an image in a container, next to a helper image
that no registry here can give; a job without one runs in a shell. A `.gitlab-ci-local.yml`
beside the pipeline (read by gitlab-ci-local only, merged over the pipeline) takes the
images away, so that the pipeline itself stays what a GitLab project would hold.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PIPELINE_SECONDS = 300
# Variables of the machine running the tests that must not reach the pipeline's jobs.
FOREIGN = ("TREADLE_", "GITLAB_", "CI_", "GITHUB_", "JENKINS_", "BUILD_")
# Committed in every test project: gitlab-ci-local's GITLAB_USER_LOGIN is its local part.
USER = ("Deployer", "deployer@example.invalid")


@dataclass
class Pipeline:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def passed(self, job: str) -> bool:
        return any(line.split() == ["PASS", job] for line in self.stdout.splitlines())

    def __str__(self) -> str:
        return f"exit {self.code}\n{self.output}"


def run_pipeline(
    gitlab_ci_local: str,
    project: Path,
    treadle_bin: Path,
    *args: str,
    validate: bool = False,
    **variables: str,
) -> Pipeline:
    """gitlab-ci-local in `project`: the whole pipeline, or what `args` name (jobs,
    `--list`). GitLab's schema is checked only when asked: the images taken away by
    `.gitlab-ci-local.yml` (`image: null`) are not in it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env["PATH"] = f"{treadle_bin}{os.pathsep}{env.get('PATH', '')}"
    command = [gitlab_ci_local, "--shell-executor-no-image"]
    if not validate:
        command.append("--json-schema-validation=false")
    command += [f"--variable={name}={value}" for name, value in variables.items()]
    done = subprocess.run(
        [*command, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=PIPELINE_SECONDS,
        stdin=subprocess.DEVNULL,
    )
    return Pipeline(done.returncode, done.stdout, done.stderr)


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def git_project(folder: Path, files: dict[str, str], remote: str | None = None) -> str:
    """A git work tree holding `files`, committed; its commit's SHA."""
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(folder, "init", "-q", "-b", "main")
    git(folder, "config", "user.name", USER[0])
    git(folder, "config", "user.email", USER[1])
    if remote:
        git(folder, "remote", "add", "origin", remote)
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", "pipeline")
    return git(folder, "rev-parse", "HEAD")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def dotenv_report(project: Path, job: str) -> dict[str, str]:
    """The variables of the dotenv report that `job` handed on (gitlab-ci-local keeps each
    job's reports under .gitlab-ci-local/artifacts/<job>)."""
    folder = project / ".gitlab-ci-local" / "artifacts" / job / ".gitlab-ci-reports" / "dotenv"
    [report] = list(folder.iterdir())
    return dict(line.split("=", 1) for line in report.read_text().splitlines() if line)
