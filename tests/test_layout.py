"""The layout's rules, held for every change: modules small enough to read at once, each
provider standing alone (Docker and Swarm share only providers/engine), and stages that
reach a provider only through the seam."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "treadle"
MODULES = sorted(SRC.rglob("*.py"))
MOST_LINES = 400
PROVIDERS = ("docker", "swarm", "marathon")


def imported(path: Path) -> set[str]:
    """Every module `path` imports, at its top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_module_is_over_400_lines(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MOST_LINES, f"{path.relative_to(SRC)}: {lines} lines"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_provider_imports_no_other_provider(provider: str) -> None:
    others = [f"treadle.providers.{p}" for p in PROVIDERS if p != provider]
    for path in (SRC / "providers" / provider).rglob("*.py"):
        crossing = {m for m in imported(path) if m.startswith(tuple(others))}
        assert not crossing, f"{path.relative_to(SRC)} imports {sorted(crossing)}"


def test_stages_reach_providers_only_through_the_seam() -> None:
    """Policy above the seam: a stage knows the Provider protocol and its records, never a
    provider's own modules."""
    for path in (SRC / "stages").rglob("*.py"):
        below = {
            m
            for m in imported(path)
            if m.startswith("treadle.providers.")
            and m not in ("treadle.providers.base", "treadle.providers.registry")
        }
        assert not below, f"{path.relative_to(SRC)} imports {sorted(below)}"
