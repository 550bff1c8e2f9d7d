from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real DC/OS payloads (../shared/data), through TREADLE_SHARED_DATA."""
    folder = os.environ.get("TREADLE_SHARED_DATA")
    if not folder:
        pytest.skip(
            "TREADLE_SHARED_DATA is not set: the real Marathon/Metronome payloads are absent"
        )
    path = Path(folder)
    if not (path / "marathon").is_dir():
        pytest.fail(f"TREADLE_SHARED_DATA={folder} has no marathon/ folder")
    return path


@pytest.fixture
def fast_leases(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A dead holder's lease expires at once, for the reruns of another run; no cancel
    left over from another test."""
    from treadle.stages import lease
    from treadle.waiting import CANCELLED

    monkeypatch.setattr(lease, "TTL", 0.05)
    monkeypatch.setattr(lease, "RENEW_EVERY", 0.01)
    monkeypatch.setattr(lease, "LOOK_FIRST", 0.01)
    monkeypatch.setattr(lease, "LOOK_MAX", 0.02)
    CANCELLED.clear()
    yield
    CANCELLED.clear()
