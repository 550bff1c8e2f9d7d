"""The README's quick start from a clean virtualenv: `pip install .` with no extras, then
its commands, on a real engine. It installs treadle's dependencies from the package
index (about 10 s with a warm pip cache, longer on a new machine)."""

from __future__ import annotations

import os
import shlex
import subprocess
import venv
from pathlib import Path

import pytest
from dockerish import IMAGE
from walkthroughs import walkthrough

pytestmark = pytest.mark.docker

ROOT = Path(__file__).parent.parent.parent
STAND_INS = {"busybox:latest": IMAGE, "busybox:1.36": IMAGE}


def test_a_clean_virtualenv_runs_the_quick_start(
    engine: object, region: str, tmp_path: Path
) -> None:
    home = tmp_path / "venv"
    venv.create(home, with_pip=True)
    installed = subprocess.run(
        [home / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TREADLE_", "PYTHON", "VIRTUAL_ENV"))
    }
    env.update(TREADLE_REGION=region, PATH=f"{home / 'bin'}:{env.get('PATH', '')}")
    steps = [step.words for step in walkthrough("quickstart")]
    # And a Compose service, checked against the schema that comes with a plain install.
    steps.append(
        shlex.split(
            "treadle deploy --app hello --image busybox:latest --dry-run "
            "--spec examples/compose.yaml --service web"
        )
    )
    for words in steps:
        argv = [STAND_INS.get(word, word) for word in words]
        ran = subprocess.run(
            [home / "bin" / argv[0], *argv[1:]],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert ran.returncode == 0, f"{shlex.join(argv)}\n{ran.stderr}"
