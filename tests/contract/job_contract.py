"""run-job, through the CLI as a CI step runs it: the same scenarios for every provider
that runs jobs.

A provider's test class subclasses `JobContract`, supplies the fixtures below and
implements the two hooks. The scenarios describe a job by what it does (what it prints,
how long it takes, which files it writes, how it exits); the hook `job_args` turns that
into run-job options the provider runs (a shell command on an engine, a scripted job on
an emulator).

Fixtures a subclass provides:
    connection_args  list[str]: the CLI options that reach the provider
    provider         a connected provider (the seam), closed afterwards
    region           a region name in the provider's form, emptied afterwards
    job_id           a fresh job id; whatever its runs leave behind is removed afterwards
    versioned_image  (repository, tag): `repository:tag` deploys and becomes healthy
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from unittest import mock

from helpers import Outcome, treadle

# How long a stopped run may take to be gone (its stop grace, and the provider's clean-up).
GONE_WITHIN = 20.0


class JobContract:
    # --- hooks ---------------------------------------------------------------------------

    def job_args(
        self,
        job_id: str,
        *,
        stdout: str = "",
        stderr: str = "",
        seconds: float = 0,
        files: Mapping[str, str] | None = None,
        exit_code: int = 0,
    ) -> list[str]:
        """run-job options (besides --job-id) for a job that prints `stdout`, then `stderr`
        to its standard error, then takes `seconds`, then writes `files` (path relative to
        its working directory -> text) and exits with `exit_code`."""
        raise NotImplementedError

    def leftovers(self, provider: Any, job_id: str) -> list[str]:
        """What still runs, or is kept, of the job's runs: nothing once run-job has ended."""
        raise NotImplementedError

    def bad_inputs(self, tmp_path: Path) -> list[list[str]]:
        """Provider-specific run-job options that must be refused (exit 2)."""
        return []

    def stage(self, connection_args: list[str], *args: str, **kw: Any) -> Outcome:
        return treadle(*args, *connection_args, **kw)

    # --- helpers -------------------------------------------------------------------------

    def run_job(self, conn: list[str], job_id: str, *args: str, **kw: Any) -> Outcome:
        return self.stage(conn, "run-job", "--job-id", job_id, *args, **kw)

    def assert_nothing_left(self, provider: Any, job_id: str) -> None:
        end = time.monotonic() + GONE_WITHIN
        while left := self.leftovers(provider, job_id):
            assert time.monotonic() < end, f"left behind: {left}"
            time.sleep(0.2)

    # --- scenarios -----------------------------------------------------------------------

    def test_outputs_come_from_its_log_and_a_json_output_file(
        self, connection_args, provider, job_id
    ) -> None:
        stdout = (
            "building\n"
            "TREADLE_OUTPUT image=web:7\n"
            'TREADLE_OUTPUT_JSON {"size": 3, "tags": ["a"]}\n'
            "done\n"
        )
        outcome = self.run_job(
            connection_args,
            job_id,
            *self.job_args(
                job_id, stdout=stdout, files={"result.json": '{"version": "1.2.3", "ok": true}'}
            ),
            "--output-file",
            "result.json",
        )
        assert outcome.code == 0, outcome
        result = outcome.result
        assert result is not None
        assert result["outputs"] == {
            "image": "web:7",
            "size": 3,
            "tags": ["a"],
            "version": "1.2.3",
            "ok": True,
        }
        assert (result["status"], result["job_id"], result["exit_code"]) == ("succeeded", job_id, 0)
        assert result["run_id"] and result["job_status"]
        streamed = [line[2:] for line in outcome.stderr.splitlines() if line.startswith("| ")]
        assert streamed == stdout.splitlines()
        self.assert_nothing_left(provider, job_id)

    def test_a_properties_output_file_feeds_a_later_deploy(
        self, connection_args, provider, region, job_id, versioned_image, tmp_path: Path
    ) -> None:
        repository, tag = versioned_image
        job_result = tmp_path / "job.json"
        properties = f"# written by the build\nversion = {tag}\napp.name: web\n"
        ran = self.run_job(
            connection_args,
            job_id,
            *self.job_args(job_id, files={"build.properties": properties}),
            "--output-file",
            "build.properties",
            "--output",
            str(job_result),
        )
        assert ran.code == 0, ran
        assert json.loads(job_result.read_text())["outputs"] == {"version": tag, "app.name": "web"}

        deployed = self.stage(
            connection_args,
            "deploy",
            "--app",
            "web",
            "--region",
            region,
            "--context",
            str(job_result),
            "--image",
            repository + ":{{ outputs.version }}",
            "--timeout",
            "60s",
        )
        assert deployed.code == 0, deployed
        group = provider.server_group(region, "web-v000")
        assert group is not None and group.image == f"{repository}:{tag}"

    def test_a_failing_job_fails_with_its_exit_code_and_the_tail_of_its_log(
        self, connection_args, provider, job_id
    ) -> None:
        stdout = "".join(f"migration {n}\n" for n in range(30)) + "error: table locked\n"
        outcome = self.run_job(
            connection_args, job_id, *self.job_args(job_id, stdout=stdout, exit_code=3)
        )
        assert outcome.code == 1, outcome
        result = outcome.result
        assert result is not None
        assert (result["status"], result["exit_code"]) == ("failed", 3)
        assert result["job_id"] == job_id and result["run_id"] and result["job_status"]
        message = result["error"]["message"]
        assert f"job {job_id} run {result['run_id']} failed with exit code 3" in message
        assert message.endswith("migration 29\nerror: table locked")
        assert "migration 9\n" not in message, "only the tail of the log"
        assert "Traceback" not in outcome.stderr
        self.assert_nothing_left(provider, job_id)

    def test_its_stderr_streams_apart_and_a_failure_quotes_both_streams(
        self, connection_args, provider, job_id
    ) -> None:
        stdout = "migrating\nTREADLE_OUTPUT step=3\n"
        stderr = "TREADLE_OUTPUT ignored=yes\nwarning: slow\nerror: table locked\n"
        outcome = self.run_job(
            connection_args,
            job_id,
            *self.job_args(job_id, stdout=stdout, stderr=stderr, exit_code=2),
        )
        assert outcome.code == 1, outcome
        lines = outcome.stderr.splitlines()
        assert [line[2:] for line in lines if line.startswith("| ")] == stdout.splitlines()
        assert [line[2:] for line in lines if line.startswith("! ")] == stderr.splitlines()
        result = outcome.result
        assert result is not None and result["exit_code"] == 2
        assert result["outputs"] == {"step": "3"}, "outputs come from stdout alone"
        assert result["error"]["message"].endswith(
            "\nlast lines of its stdout:\nmigrating\nTREADLE_OUTPUT step=3"
            "\nlast lines of its stderr:\nTREADLE_OUTPUT ignored=yes\nwarning: slow"
            "\nerror: table locked"
        )
        self.assert_nothing_left(provider, job_id)

    def test_a_job_still_running_at_the_timeout_is_stopped(
        self, connection_args, provider, job_id
    ) -> None:
        started = time.monotonic()
        outcome = self.run_job(
            connection_args,
            job_id,
            *self.job_args(job_id, stdout="started\n", seconds=60),
            "--timeout",
            "2s",
        )
        took = time.monotonic() - started
        assert outcome.code == 1, outcome
        assert outcome.result is not None and outcome.result["error"]["type"] == "Timeout"
        assert "did not finish in 2s and was stopped" in outcome.result["error"]["message"]
        assert took < 2 + GONE_WITHIN, f"took {took:.1f}s for a 2s timeout"
        lines = outcome.stderr.splitlines()
        stopping = next(i for i, line in enumerate(lines) if "at the timeout, stopping" in line)
        assert "| started" in lines[:stopping], "the log streams while the job runs"
        self.assert_nothing_left(provider, job_id)

    def test_a_missing_output_file_is_a_clear_failure(
        self, connection_args, provider, job_id
    ) -> None:
        outcome = self.run_job(
            connection_args,
            job_id,
            *self.job_args(job_id, stdout="did the work\n"),
            "--output-file",
            "out/result.json",
        )
        assert outcome.code == 1, outcome
        assert outcome.error_lines == [
            "error: the job succeeded but wrote no output file out/result.json"
        ]
        self.assert_nothing_left(provider, job_id)

    def test_bad_input_is_refused_before_anything_runs(
        self, connection_args, provider, job_id, tmp_path: Path
    ) -> None:
        job = self.job_args(job_id, stdout="never\n")
        cases = [
            ["--job-id", job_id, *job, "--env", "NOT AN ENV"],
            ["--job-id", "Not A Job!", *job],
            *(["--job-id", job_id, *job, *bad] for bad in self.bad_inputs(tmp_path)),
        ]
        # The in-process stage opens a provider of this class: none may start a run.
        never = AssertionError("a run was started")
        with mock.patch.object(type(provider), "start_job", side_effect=never):
            for args in cases:
                outcome = self.stage(connection_args, "run-job", *args)
                assert outcome.code == 2, (args, outcome)
                assert outcome.result is not None and outcome.result["status"] == "failed"
        assert self.leftovers(provider, job_id) == []
