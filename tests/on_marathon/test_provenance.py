"""Provenance on DC/OS beyond the contract: a Metronome job carries the CI run's labels,
from each CI system's variables (checked against Metronome's own job schema by the
emulator when the shared data is there)."""

from __future__ import annotations

import pytest
from ci_variables import EXPECTED, SYSTEMS
from emulator import MetronomeEmulator
from helpers import treadle

from treadle.ci import provenance_fields

from .test_run_job import job_posts


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_a_metronome_job_is_labelled_with_the_runs_provenance(
    metronome: MetronomeEmulator, system: str
) -> None:
    metronome.script("ci.migrate", stdout="migrated\n")
    outcome = treadle(
        "run-job",
        "--job-id",
        "ci.migrate",
        "--image",
        "registry.example/web:7",
        "--cmd",
        "./migrate",
        "--dcos-url",
        metronome.dcos_url,
        env=SYSTEMS[system],
    )
    assert outcome.code == 0, outcome
    assert outcome.result is not None
    assert outcome.result["provenance"] == EXPECTED[system]
    [posted] = job_posts(metronome)
    assert provenance_fields(posted["labels"]) == EXPECTED[system]
