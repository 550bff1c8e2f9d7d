from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from emulator import MarathonEmulator

from .schemas import app_definition_validator

FAST = {"deploy_seconds": 0.05, "task_start_seconds": 0.05, "health_seconds": 0.05}


@pytest.fixture
def marathon() -> Iterator[MarathonEmulator]:
    """A Marathon on 127.0.0.1 that checks every app definition it receives against
    Marathon's own schema when the shared data is there."""
    with MarathonEmulator(**FAST) as emu:
        folder = os.environ.get("TREADLE_SHARED_DATA")
        if folder:
            emu.validators.append(app_definition_validator(Path(folder)))
        yield emu
