"""The README's walkthroughs, read as a test runs them: each command line of the bash
block after `<!-- walkthrough: NAME ... -->`, with the exit code its comment promises."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).parent.parent / "README.md"


@dataclass(frozen=True)
class Step:
    words: list[str]
    exit_code: int
    line: str


def walkthrough(name: str, page: Path = README) -> list[Step]:
    """Commands joined by `&&` are steps of their own; `pip install` is left to the test
    environment, which has treadle installed already."""
    text = page.read_text()
    marker = text.index(f"<!-- walkthrough: {name}")
    block = re.search(r"```bash\n(.*?)```", text[marker:], re.DOTALL)
    assert block, f"no bash block after the {name} walkthrough marker"
    steps = []
    for line in block.group(1).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        command, _, comment = line.partition("  #")
        expected = int(m.group(1)) if (m := re.search(r"exit (\d)", comment)) else 0
        for part in command.split("&&"):
            words = shlex.split(part)
            if words[:2] != ["pip", "install"]:
                steps.append(Step(words, expected, line))
    return steps
