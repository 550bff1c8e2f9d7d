"""treadle reads every real Metronome payload in the shared data: job definitions as specs
(and what it builds from them is what Metronome's schema accepts), runs as Metronome
answers them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from emulator import MetronomeEmulator, Request, Response
from helpers import treadle

from treadle import __version__
from treadle.console import Console
from treadle.errors import InputError
from treadle.providers.base import JobRequest, JobRun
from treadle.providers.marathon import MarathonProvider
from treadle.providers.marathon.metronome import build_job, finished_run
from treadle.providers.marathon.settings import MarathonSettings
from treadle.waiting import Deadline

from .schemas import job_definition_validator

FOLDERS = ("metronome/examples", "dcos-cli/metronome-jobs")
# Deliberately malformed upstream; treadle must refuse it, not read it.
MALFORMED = "bad.json"
# Documents that are no job and no run: schedules, the launch queue, the CLI's config schema.
NOT_READ = {
    "schedule.json",
    "schedule_list.json",
    "sch-1.json",
    "sch-2.json",
    "queue_job_list.json",
    "schema-config.json",
}
# An example job list holds an id that Metronome's own schema refuses.
INVALID_IDS = {"cleanDb --force"}


def documents(root: Path) -> Iterator[tuple[str, Any]]:
    for folder in FOLDERS:
        for path in sorted((root / folder).glob("*.json")):
            if path.name not in NOT_READ | {MALFORMED}:
                yield path.name, json.loads(path.read_text())


def jobs_and_runs(root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    jobs, runs = [], []
    for name, document in documents(root):
        for item in document if isinstance(document, list) else [document]:
            if "run" in item:
                jobs.append(item)
            elif "jobId" in item and "status" in item:
                runs.append(item)
            else:
                raise AssertionError(f"{name}: neither a job nor a run: {item}")
    return jobs, runs


def request(spec: dict[str, Any] | None, **flags: Any) -> JobRequest:
    values: dict[str, Any] = {
        "job_id": None,
        "image": None,
        "command": None,
        "env": {},
        "cpus": None,
        "mem": None,
    }
    return JobRequest(**{**values, **flags}, spec=spec, labels={"treadle.version": __version__})


def test_every_real_job_is_a_spec_whose_definition_metronome_accepts(shared_data: Path) -> None:
    validate = job_definition_validator(shared_data)
    jobs, _ = jobs_and_runs(shared_data)
    assert len(jobs) >= 12
    for job in jobs:
        if job["id"] in INVALID_IDS:
            with pytest.raises(InputError, match="invalid job id"):
                build_job(request(job))
            continue
        as_it_is = build_job(request(job))
        validate(as_it_is)
        assert as_it_is["run"]["cmd"] == job["run"]["cmd"]
        assert as_it_is["labels"]["treadle.version"] == __version__
        overlaid = build_job(
            request(
                job,
                job_id="ci.real",
                image="busybox:1",
                command="true",
                env={"A": "1"},
                cpus=0.5,
                mem=64,
            )
        )
        validate(overlaid)
        image = (
            overlaid["run"]["ucr"]["image"]["id"]
            if "ucr" in job["run"]
            else overlaid["run"]["docker"]["image"]
        )
        assert (overlaid["id"], image, overlaid["run"]["env"]["A"]) == ("ci.real", "busybox:1", "1")


def test_every_real_run_answer_is_read(shared_data: Path) -> None:
    """Each run Metronome's examples show, answered for a run treadle follows."""
    _, runs = jobs_and_runs(shared_data)
    assert len(runs) >= 5
    with MetronomeEmulator() as emu:
        provider = MarathonProvider(
            MarathonSettings(dcos_url=emu.dcos_url), deadline=Deadline(10), console=Console()
        )
        try:
            for run in runs:

                def answer(r: Request, run: dict[str, Any] = run) -> Response | None:
                    return Response(200, run) if r.path.startswith("/v1/jobs/prod/runs/") else None

                emu.faults[:] = [answer]
                status = provider.job_status(JobRun("prod", run["id"]))
                assert (status.state, status.finished) == (run["status"], False)
                assert provider.job_log(JobRun("prod", run["id"]), 0) == ("", 0), (
                    "no task yet, no log"
                )
        finally:
            provider.close()


def test_a_real_job_answer_without_history_lists_no_finished_run(shared_data: Path) -> None:
    for job in json.loads((shared_data / "metronome/examples/job_list.json").read_text()):
        assert finished_run(job, "20160715130259A34HX") is None


def test_the_malformed_example_is_refused_as_a_spec(shared_data: Path) -> None:
    with MetronomeEmulator() as emu:
        outcome = treadle(
            "run-job",
            "--spec",
            str(shared_data / "dcos-cli/metronome-jobs" / MALFORMED),
            "--dcos-url",
            emu.dcos_url,
        )
        assert emu.mutating_requests() == []
    assert outcome.code == 2, outcome
    assert len(outcome.stderr.strip().splitlines()) == 1
