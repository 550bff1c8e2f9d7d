from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from emulator import MarathonEmulator, MetronomeEmulator

from .schemas import app_definition_validator, job_definition_validator

FAST = {"deploy_seconds": 0.05, "task_start_seconds": 0.05, "health_seconds": 0.05}
FAST_JOBS = {"step_seconds": 0.02, "run_seconds": 0.1}


@pytest.fixture
def marathon() -> Iterator[MarathonEmulator]:
    """A Marathon on 127.0.0.1 that checks every app definition it receives against
    Marathon's own schema when the shared data is there."""
    with MarathonEmulator(**FAST) as emu:
        folder = os.environ.get("TREADLE_SHARED_DATA")
        if folder:
            emu.validators.append(app_definition_validator(Path(folder)))
        yield emu


@pytest.fixture
def metronome() -> Iterator[MetronomeEmulator]:
    """A DC/OS cluster on 127.0.0.1 with Metronome and Mesos, checking every job definition
    it receives against Metronome's own schema when the shared data is there."""
    with MetronomeEmulator(**FAST_JOBS) as emu:
        folder = os.environ.get("TREADLE_SHARED_DATA")
        if folder:
            emu.validators.append(job_definition_validator(Path(folder)))
        yield emu
