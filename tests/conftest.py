from __future__ import annotations

import os
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
