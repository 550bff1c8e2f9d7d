"""docs/docker.md's walkthrough is true: each of its commands runs as written on a real
engine, with either provider, exits as the page says, and leaves what the page says.

The page names public busybox images, which cannot be pulled here: the local test images
(busybox with httpd and wget) stand in for them. Each run gets a region of its own
through TREADLE_REGION.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from dockerish import IMAGE, IMAGE_V2, treadle_on_engine

pytestmark = pytest.mark.docker

ROOT = Path(__file__).parent.parent.parent
PAGE = ROOT / "docs" / "docker.md"
STAND_INS = {"busybox:1.36": IMAGE, "busybox:1.37": IMAGE_V2}


def walkthrough(name: str) -> list[str]:
    """The lines of the bash block that follows `<!-- walkthrough: NAME ... -->`."""
    text = PAGE.read_text()
    marker = text.index(f"<!-- walkthrough: {name}")
    block = re.search(r"```bash\n(.*?)```", text[marker:], re.DOTALL)
    assert block, f"no bash block after the {name} walkthrough marker"
    return [
        line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    ]


@pytest.mark.parametrize("provider", ["docker", "swarm"])
def test_walkthrough(
    provider: str,
    request: pytest.FixtureRequest,
    region: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if provider == "swarm":
        request.getfixturevalue("swarm")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "hello.yaml").write_text(
        (ROOT / "examples" / "hello.yaml").read_text()
    )
    env = {"TREADLE_PROVIDER": provider, "TREADLE_REGION": region}
    for line in walkthrough("docker"):
        command, _, comment = line.partition("#")
        words = [STAND_INS.get(word, word) for word in shlex.split(command)]
        assert words[0] == "treadle", line
        expected = int(m.group(1)) if (m := re.search(r"exit (\d)", comment)) else 0
        outcome = treadle_on_engine(*words[1:], env=env)
        assert outcome.code == expected, f"{line}\n{outcome}"

    assert json.loads(Path("image.json").read_text())["image"] == IMAGE_V2
    assert json.loads(Path("v000.json").read_text())["endpoints"], "where hello-v000 answered"
    found = treadle_on_engine(
        "find-image", "--cluster", "hello", "--include-disabled", "--selection", "fail", env=env
    )
    assert found.code == 0, found
    result: dict[str, Any] = found.result or {}
    assert (result["server_group"], result["enabled"], result["instances"]) == (
        "hello-v000",
        True,
        2,
    )
