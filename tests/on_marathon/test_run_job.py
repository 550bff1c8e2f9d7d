"""run-job on DC/OS: a Metronome job run to completion, its log and outputs read from its
Mesos sandbox, and the outputs handed to later steps."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from emulator import MarathonEmulator, MetronomeEmulator, Request, Response, ServiceAccount, Token
from emulator.messages import html_page
from helpers import treadle

from treadle.console import Console
from treadle.errors import StageFailed
from treadle.providers.base import JobRequest, JobRun
from treadle.providers.marathon import MarathonProvider
from treadle.providers.marathon.dcos import Urls
from treadle.providers.marathon.sandbox import task_in_state
from treadle.providers.marathon.settings import MarathonSettings
from treadle.waiting import Deadline

from .conftest import FAST_JOBS
from .schemas import job_definition_validator
from .test_connection import rsa_key

RESULT = b'{"version": "1.2.3", "ok": true}'


def run_job(metronome: MetronomeEmulator, *args: str, **kw: Any):  # type: ignore[no-untyped-def]
    return treadle("run-job", *args, "--dcos-url", metronome.dcos_url, **kw)


def job_posts(metronome: MetronomeEmulator) -> list[dict[str, Any]]:
    """Job definitions treadle sent (creates and updates)."""
    return [
        r.body
        for r in metronome.mutating_requests()
        if (r.method, r.path) == ("POST", "/v1/jobs")
        or (r.method == "PUT" and r.path.startswith("/v1/jobs/"))
    ]


# -- outputs, and the chain to a later step --------------------------------------------


def test_a_jobs_output_file_feeds_a_later_deploy(
    metronome: MetronomeEmulator, marathon: MarathonEmulator, tmp_path: Path
) -> None:
    metronome.script("ci.version", stdout="computing the version\n", files={"result.json": RESULT})
    job_result = tmp_path / "job.json"
    ran = run_job(
        metronome,
        "--job-id",
        "ci.version",
        "--cmd",
        "./version.sh > result.json",
        "--output-file",
        "result.json",
        "--output",
        str(job_result),
    )
    assert ran.code == 0, ran
    job = json.loads(job_result.read_text())
    assert job["outputs"] == {"version": "1.2.3", "ok": True}
    assert (job["job_id"], job["job_status"], job["exit_code"]) == ("ci.version", "SUCCESS", 0)
    assert job["run_id"]

    deployed = treadle(
        "deploy",
        "--app",
        "web",
        "--context",
        str(job_result),
        "--image",
        "repo:{{ outputs.version }}",
        "--marathon-url",
        marathon.url,
    )
    assert deployed.code == 0, deployed
    assert marathon.app("/web-v000")["container"]["docker"]["image"] == "repo:1.2.3"


def test_a_properties_file_and_log_lines_become_outputs(metronome: MetronomeEmulator) -> None:
    metronome.script(
        "ci.build",
        stdout='building\nTREADLE_OUTPUT image=web:7\nTREADLE_OUTPUT_JSON {"size": 3, "tags": ["a"]}\ndone\n',
        files={"build.properties": b"# written by the build\nversion = 2.0\napp.name: web\n"},
    )
    outcome = run_job(
        metronome, "--job-id", "ci.build", "--cmd", "make", "--output-file", "build.properties"
    )
    assert outcome.code == 0, outcome
    assert outcome.result is not None
    assert outcome.result["outputs"] == {
        "image": "web:7",
        "size": 3,
        "tags": ["a"],
        "version": "2.0",
        "app.name": "web",
    }


def test_the_log_streams_to_stderr_while_the_job_runs(metronome: MetronomeEmulator) -> None:
    """While the Mesos master's events tell when the run ends, the log is read at its own
    pace (after 1 s, then 1.5 s later...): a 3 s job's log arrives in parts."""
    lines = [f"step {n}" for n in range(20)]
    metronome.script("ci.steps", stdout="".join(f"{line}\n" for line in lines), seconds=3.0)
    outcome = run_job(metronome, "--job-id", "ci.steps", "--cmd", "./steps.sh")
    assert outcome.code == 0, outcome
    streamed = [line[2:] for line in outcome.stderr.splitlines() if line.startswith("| ")]
    assert streamed == lines
    progress = outcome.stderr.splitlines()
    assert progress.index(f"run {outcome.result['run_id']}: ACTIVE") < progress.index("| step 0")  # type: ignore[index]
    assert progress.index("| step 19") < progress.index(f"run {outcome.result['run_id']}: SUCCESS")  # type: ignore[index]
    offsets = {
        int(r.param("offset") or 0) for r in metronome.requests if r.path.endswith("/files/read")
    }
    assert len(offsets - {0}) >= 2, (
        "the log is read in parts while the job runs, not once at the end"
    )


def test_a_log_that_fits_one_read_costs_one_read_per_look(metronome: MetronomeEmulator) -> None:
    metronome.script("ci.steps", stdout="".join(f"step {n}\n" for n in range(20)), seconds=0.6)
    outcome = run_job(metronome, "--job-id", "ci.steps", "--cmd", "./steps.sh")
    assert outcome.code == 0, outcome
    looks = [r for r in metronome.requests if r.method == "GET" and "/runs/" in r.path]
    for stream in ("stdout", "stderr"):
        reads = [
            r
            for r in metronome.requests
            if r.path.endswith("/files/read")
            and r.param("offset") != "-1"
            and (r.param("path") or "").endswith(f"/{stream}")
        ]
        assert reads and all(r.param("length") == "65536" for r in reads)
        assert len(reads) <= len(looks) + 1, f"the {stream} was read again to find its end"


def test_a_log_larger_than_one_mesos_read_arrives_whole(metronome: MetronomeEmulator) -> None:
    """Mesos answers at most 64 KiB per read; a character cut at that edge arrives whole."""
    text = "".join(f"{n:05d} {'é' * 40} ✓\n" for n in range(3000))
    metronome.script("ci.big", stdout=text + "TREADLE_OUTPUT last=yes\n", seconds=0.05)
    outcome = run_job(metronome, "--job-id", "ci.big", "--cmd", "./big.sh")
    assert outcome.code == 0, outcome
    assert outcome.result is not None and outcome.result["outputs"] == {"last": "yes"}
    streamed = "".join(
        line[2:] + "\n" for line in outcome.stderr.splitlines() if line.startswith("| ")
    )
    assert streamed == text + "TREADLE_OUTPUT last=yes\n"


def test_outputs_reach_github_outputs_and_dotenv(
    metronome: MetronomeEmulator, tmp_path: Path
) -> None:
    """One level of nesting is flattened: `outputs_version` (GitHub), `TREADLE_OUTPUTS_VERSION`
    (GitLab); names GitLab would refuse (`app.name`) become `_`."""
    metronome.script(
        "ci.version",
        files={
            "result.json": b'{"version": "1.2.3", "ok": true, "app.name": "web", "image": {"tag": "x"}}'
        },
    )
    github, dotenv = tmp_path / "github_output", tmp_path / "job.env"
    outcome = run_job(
        metronome,
        "--job-id",
        "ci.version",
        "--cmd",
        "./v.sh",
        "--output-file",
        "result.json",
        "--dotenv",
        str(dotenv),
        env={"GITHUB_OUTPUT": str(github)},
    )
    assert outcome.code == 0, outcome
    outputs = github.read_text().splitlines()
    assert {"outputs_version=1.2.3", "outputs_ok=true", "job_status=SUCCESS", "exit_code=0"} <= set(
        outputs
    )
    variables = dotenv.read_text().splitlines()
    assert {
        "TREADLE_OUTPUTS_VERSION=1.2.3",
        "TREADLE_OUTPUTS_OK=true",
        "TREADLE_OUTPUTS_APP_NAME=web",
    } <= set(variables)
    assert not any(v.startswith("TREADLE_OUTPUTS_IMAGE") for v in variables), (
        "one level only: the JSON has the rest"
    )


# -- failures ------------------------------------------------------------------------------


def test_a_failing_job_is_exit_1_with_its_reason_and_the_tail_of_its_log(
    metronome: MetronomeEmulator,
) -> None:
    metronome.script(
        "ci.migrate",
        stdout="".join(f"migration {n}\n" for n in range(30)),
        stderr="TREADLE_OUTPUT ignored=yes\npsycopg2.OperationalError: table locked\n",
        exit_code=3,
    )
    outcome = run_job(
        metronome, "--job-id", "ci.migrate", "--cmd", "./migrate.sh", "--output-file", "result.json"
    )
    assert outcome.code == 1, outcome
    assert outcome.result is not None
    assert (outcome.result["job_status"], outcome.result["exit_code"]) == ("FAILED", 3)
    message = outcome.result["error"]["message"]
    assert "failed with exit code 3: Command exited with status 3 (TASK_FAILED)" in message
    # The tail of each stream: stderr (the job's own lines amid the executor's) last.
    stdout, _, stderr = message.partition("\nlast lines of its stderr:\n")
    assert stdout.endswith(
        "last lines of its stdout:\n" + "\n".join(f"migration {n}" for n in range(10, 30))
    )
    assert "migration 9\n" not in message, "only the tail of the log"
    assert "psycopg2.OperationalError: table locked" in stderr.splitlines()
    assert "Command exited with status 3" in stderr.splitlines()[-1]
    assert "! psycopg2.OperationalError: table locked" in outcome.stderr.splitlines()
    assert outcome.result["outputs"] == {}, "outputs come from stdout alone"
    assert "Traceback" not in outcome.stderr


def test_a_job_still_running_at_the_timeout_is_stopped(metronome: MetronomeEmulator) -> None:
    metronome.script("ci.slow", stdout="started\n", seconds=30)
    outcome = run_job(metronome, "--job-id", "ci.slow", "--cmd", "sleep 30", "--timeout", "0.5s")
    assert outcome.code == 1, outcome
    assert outcome.result is not None
    assert outcome.result["error"]["type"] == "Timeout"
    assert metronome.stopped_runs() == [outcome.result["run_id"]]
    assert "did not finish in 0.5s and was stopped" in outcome.stderr
    history = metronome.job("ci.slow")["history"]  # type: ignore[index]
    assert [r["id"] for r in history["failedFinishedRuns"]] == [outcome.result["run_id"]]


def test_a_missing_output_file_is_a_clear_failure(metronome: MetronomeEmulator) -> None:
    metronome.script("ci.forgetful", stdout="did the work\n")
    outcome = run_job(
        metronome, "--job-id", "ci.forgetful", "--cmd", "true", "--output-file", "out/result.json"
    )
    assert outcome.code == 1, outcome
    assert outcome.error_lines == [
        "error: the job succeeded but wrote no output file out/result.json"
    ]
    assert "Traceback" not in outcome.stderr


def test_an_output_file_that_is_not_json_nor_properties_text_is_a_clear_failure(
    metronome: MetronomeEmulator,
) -> None:
    metronome.script("ci.json", files={"result.json": b'{"version": '})
    outcome = run_job(
        metronome,
        "--job-id",
        "ci.json",
        "--cmd",
        "true",
        "--output-file",
        "/mnt/mesos/sandbox/result.json",
    )
    assert outcome.code == 1, outcome
    assert "output file /mnt/mesos/sandbox/result.json: invalid JSON" in outcome.stderr


def test_a_sandbox_dcos_refuses_fails_the_stage_naming_what_and_why(
    metronome: MetronomeEmulator,
) -> None:
    metronome.script("ci.version", stdout="hi\n", files={"result.json": RESULT})
    metronome.faults.append(
        lambda r: html_page(403, "Forbidden") if r.path.startswith(("/mesos", "/agent")) else None
    )
    outcome = run_job(
        metronome, "--job-id", "ci.version", "--cmd", "true", "--output-file", "result.json"
    )
    assert outcome.code == 1, outcome
    [error] = outcome.error_lines
    assert "succeeded, but its log (stdout in its Mesos sandbox) cannot be read" in error
    for route in ("/mesos/tasks", "/mesos/master/state"):
        assert f"DC/OS at {metronome.url} forbids GET {route} (403)" in error, route
    assert outcome.result is not None and "outputs" not in outcome.result
    assert (outcome.result["job_status"], outcome.result["exit_code"]) == ("SUCCESS", 0)


# -- finding the sandbox when the master's /tasks does not --------------------------------


def master_asked(metronome: MetronomeEmulator, path: str) -> int:
    return sum(1 for r in metronome.requests if r.path == path)


def test_without_mesos_tasks_outputs_come_through_the_masters_state(
    metronome: MetronomeEmulator,
) -> None:
    """An older DC/OS, or a proxy, that does not route /mesos/tasks (Admin Router's 404)."""
    metronome.tasks_enabled = False
    metronome.script(
        "ci.version", stdout="building\nTREADLE_OUTPUT image=web:7\n", files={"result.json": RESULT}
    )
    outcome = run_job(
        metronome, "--job-id", "ci.version", "--cmd", "./v.sh", "--output-file", "result.json"
    )
    assert outcome.code == 0, outcome
    assert outcome.result is not None
    assert outcome.result["outputs"] == {"image": "web:7", "version": "1.2.3", "ok": True}
    assert "| building" in outcome.stderr and "warning" not in outcome.stderr
    assert master_asked(metronome, "/mesos/tasks") == 1, (
        "a route that is not there is not asked again"
    )
    assert master_asked(metronome, "/mesos/master/state") >= 1


def test_a_mesos_tasks_that_does_not_list_the_task_leads_to_the_masters_state(
    metronome: MetronomeEmulator,
) -> None:
    """A master that ignores task_id answers a page of other tasks."""
    metronome.faults.append(
        lambda r: Response(200, {"tasks": []}) if r.path == "/mesos/tasks" else None
    )
    metronome.script("ci.build", stdout="TREADLE_OUTPUT image=web:7\n")
    outcome = run_job(metronome, "--job-id", "ci.build", "--cmd", "make")
    assert outcome.code == 0, outcome
    assert outcome.result is not None and outcome.result["outputs"] == {"image": "web:7"}


def test_a_failed_jobs_exit_code_comes_through_the_masters_state(
    metronome: MetronomeEmulator,
) -> None:
    metronome.tasks_enabled = False
    metronome.script("ci.migrate", stdout="error: table locked\n", exit_code=3)
    outcome = run_job(metronome, "--job-id", "ci.migrate", "--cmd", "./migrate.sh")
    assert outcome.code == 1, outcome
    assert outcome.result is not None
    assert (outcome.result["job_status"], outcome.result["exit_code"]) == ("FAILED", 3)
    assert (
        "failed with exit code 3: Command exited with status 3 (TASK_FAILED)"
        in (outcome.result["error"]["message"])
    )


NEITHER_ROUTE = "GET /mesos/tasks is not served (404); GET /mesos/master/state is not served (404)"


def test_with_no_route_to_the_sandbox_a_job_that_succeeded_fails_naming_what_it_could_not_read(
    metronome: MetronomeEmulator,
) -> None:
    metronome.tasks_enabled = metronome.state_enabled = False
    metronome.script("ci.version", stdout="TREADLE_OUTPUT version=1.2.3\n")
    outcome = run_job(metronome, "--job-id", "ci.version", "--cmd", "./v.sh")
    assert outcome.code == 1, outcome
    assert outcome.result is not None
    assert outcome.result["status"] == "failed" and "outputs" not in outcome.result
    assert (outcome.result["job_status"], outcome.result["exit_code"]) == ("SUCCESS", 0)
    [error] = outcome.error_lines
    run_id = outcome.result["run_id"]
    assert error.startswith(
        f"error: run {run_id} of job ci.version succeeded, but its log (stdout in its Mesos "
        "sandbox) cannot be read, so neither can the TREADLE_OUTPUT lines it may have printed: "
        f"cannot locate Mesos task ci_version_{run_id}."
    ), error
    assert error.endswith(NEITHER_ROUTE), error


def test_with_no_route_to_the_sandbox_a_failed_job_says_its_exit_code_could_not_be_read(
    metronome: MetronomeEmulator,
) -> None:
    metronome.tasks_enabled = metronome.state_enabled = False
    metronome.script("ci.migrate", exit_code=3)
    outcome = run_job(metronome, "--job-id", "ci.migrate", "--cmd", "./migrate.sh")
    assert outcome.code == 1, outcome
    assert outcome.result is not None
    assert (outcome.result["job_status"], outcome.result["exit_code"]) == ("FAILED", None)
    message = outcome.result["error"]["message"]
    assert message.startswith(
        f"job ci.migrate run {outcome.result['run_id']} failed: Metronome says FAILED; its exit "
        "code could not be read: cannot locate Mesos task "
    ), message
    assert message.endswith(NEITHER_ROUTE), message
    assert "warning: cannot read the job's stdout" in outcome.stderr


def test_a_sandbox_young_runs_cannot_locate_yet_is_looked_for_again_quietly(
    metronome: MetronomeEmulator,
) -> None:
    """Until the run ends, a task neither route lists yet is not a failure."""
    metronome.events_enabled = False  # polled: the log is looked at with every poll
    metronome.script("ci.build", stdout="TREADLE_OUTPUT image=web:7\n", seconds=1.0)
    listed_from = time.monotonic() + 0.6

    def not_yet(request: Request) -> Response | None:
        if time.monotonic() >= listed_from:
            return None
        if request.path == "/mesos/tasks":
            return Response(200, {"tasks": []})
        if request.path == "/mesos/master/state":
            return Response(200, {"frameworks": [], "completed_frameworks": []})
        return None

    metronome.faults.append(not_yet)
    outcome = run_job(metronome, "--job-id", "ci.build", "--cmd", "make")
    assert outcome.code == 0, outcome
    assert outcome.result is not None and outcome.result["outputs"] == {"image": "web:7"}
    assert "warning" not in outcome.stderr
    assert master_asked(metronome, "/mesos/master/state") >= 2, "looked for again"


# -- the job definition ------------------------------------------------------------------


def test_a_spec_with_placeholders_and_flags_laid_over_it(
    metronome: MetronomeEmulator, tmp_path: Path
) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(
        "id: ci.migrate\n"
        "description: database migrations\n"
        "labels: {team: '{{ build.team }}'}\n"
        "schedules: [{id: nightly, cron: '0 2 * * *'}]\n"
        "run:\n"
        "  cmd: ./migrate.sh\n"
        "  mem: 256\n"
        "  env: {DB: '{{ build.db }}', LEVEL: info}\n"
        "  docker: {image: 'registry.example/migrate:old', forcePullImage: true}\n"
    )
    build = tmp_path / "build.json"
    build.write_text(
        json.dumps({"team": "data", "db": "postgres://db.example/app", "version": "4"})
    )
    outcome = run_job(
        metronome,
        "--spec",
        str(spec),
        "--context",
        f"build={build}",
        "--image",
        "registry.example/migrate:{{ build.version }}",
        "--env",
        "LEVEL=debug",
        "--cpus",
        "0.5",
    )
    assert outcome.code == 0, outcome
    assert "the spec's schedules are not sent" in outcome.stderr
    [sent] = job_posts(metronome)
    assert sent["id"] == "ci.migrate" and "schedules" not in sent
    assert sent["labels"] == {"team": "data", "treadle.version": sent["labels"]["treadle.version"]}
    assert sent["run"] == {
        "cmd": "./migrate.sh",
        "mem": 256,
        "env": {"DB": "postgres://db.example/app", "LEVEL": "debug"},
        "docker": {"image": "registry.example/migrate:4", "forcePullImage": True},
        "cpus": 0.5,
        "disk": 0,
    }


def test_an_existing_job_is_updated_then_run(metronome: MetronomeEmulator) -> None:
    first = run_job(metronome, "--job-id", "ci.report", "--cmd", "./report.sh --old")
    second = run_job(
        metronome, "--job-id", "ci.report", "--cmd", "./report.sh --new", "--mem", "64"
    )
    assert first.code == 0 and second.code == 0, second
    assert "updated job ci.report" in second.stderr
    job = metronome.job("ci.report")
    assert job is not None
    assert (job["run"]["cmd"], job["run"]["mem"]) == ("./report.sh --new", 64)
    assert job["history"]["successCount"] == 2


def test_a_bare_job_id_runs_the_existing_job_as_it_is(metronome: MetronomeEmulator) -> None:
    assert run_job(metronome, "--job-id", "ci.report", "--cmd", "./report.sh").code == 0
    before = len(job_posts(metronome))
    outcome = run_job(metronome, "--job-id", "ci.report")
    assert outcome.code == 0, outcome
    assert len(job_posts(metronome)) == before, "the job is run, not redefined"
    assert metronome.job("ci.report")["history"]["successCount"] == 2  # type: ignore[index]


def test_a_bare_job_id_of_no_job_is_exit_2(metronome: MetronomeEmulator) -> None:
    outcome = run_job(metronome, "--job-id", "ci.nothing")
    assert outcome.code == 2, outcome
    assert "job ci.nothing does not exist on Metronome" in outcome.stderr


def test_dry_run_prints_the_definition_and_changes_nothing(metronome: MetronomeEmulator) -> None:
    outcome = run_job(metronome, "--job-id", "ci.x", "--image", "busybox:1", "--dry-run")
    assert outcome.code == 0, outcome
    assert '"image": "busybox:1"' in outcome.stderr and '"cpus": 0.1' in outcome.stderr
    assert metronome.mutating_requests() == []


BAD_INPUT = {
    "invalid job id": ["--job-id", "CI_Migrate", "--cmd", "true"],
    "job id with a slash": ["--job-id", "ci/migrate", "--cmd", "true"],
    "no job id": ["--image", "busybox:1"],
    "unknown spec field": ["--spec", "{unknown}"],
    "unknown run field": ["--spec", "{unknown-run}"],
    "nothing to run": ["--job-id", "ci.x", "--env", "A=1"],
    "bad env": ["--job-id", "ci.x", "--cmd", "true", "--env", "A"],
    "cpus below Metronome's minimum": ["--job-id", "ci.x", "--cmd", "true", "--cpus", "0.001"],
    "cpus not a number": ["--job-id", "ci.x", "--cmd", "true", "--cpus", "lots"],
    "zero cpus": ["--job-id", "ci.x", "--cmd", "true", "--cpus", "0"],
    "mem below Metronome's minimum": ["--job-id", "ci.x", "--cmd", "true", "--mem", "16"],
    "output file outside the sandbox": [
        "--job-id",
        "ci.x",
        "--cmd",
        "true",
        "--output-file",
        "/tmp/result.json",
    ],
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    case: str, metronome: MetronomeEmulator, tmp_path: Path
) -> None:
    (tmp_path / "unknown.json").write_text(
        json.dumps({"id": "ci.x", "run": {"cmd": "true"}, "schedule": []})
    )
    (tmp_path / "unknown-run.json").write_text(
        json.dumps({"id": "ci.x", "run": {"cmd": "true", "instances": 2}})
    )
    files = {"{unknown}": "unknown.json", "{unknown-run}": "unknown-run.json"}
    args = [str(tmp_path / files[a]) if a in files else a for a in BAD_INPUT[case]]
    outcome = run_job(metronome, *args)
    assert outcome.code == 2, outcome
    lines = outcome.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome.stderr
    assert metronome.mutating_requests() == []


def test_unknown_spec_fields_are_named(metronome: MetronomeEmulator, tmp_path: Path) -> None:
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps({"id": "ci.x", "instances": 2, "run": {"cmd": "true", "healthChecks": []}})
    )
    outcome = run_job(metronome, "--spec", str(spec))
    assert "the spec has fields Metronome does not accept: 'instances'" in outcome.stderr


# -- reaching Metronome and the sandbox ----------------------------------------------------


def test_only_a_metronome_url_runs_the_job_warned_before_it_starts(
    metronome: MetronomeEmulator,
) -> None:
    """No route to the sandbox at all: a job nobody asked outputs of still runs (the
    decision in treadle.providers.marathon.metronome), with the warning up front."""
    metronome.script("ci.quiet", stdout="TREADLE_OUTPUT seen=yes\n")
    outcome = treadle(
        "run-job", "--job-id", "ci.quiet", "--cmd", "./quiet.sh", "--metronome-url", metronome.url
    )
    assert outcome.code == 0, outcome
    lines = outcome.stderr.splitlines()
    assert lines[0] == (
        "warning: the job's log will not be streamed, nor any TREADLE_OUTPUT lines it prints "
        "collected: give --dcos-url (or a --metronome-url ending in /service/metronome) so "
        "treadle can read the job's Mesos sandbox"
    ), lines
    assert lines[1] == "created job ci.quiet", "warned before the job is created"
    assert sum("warning" in line for line in lines) == 1
    assert outcome.result is not None and outcome.result["outputs"] == {}
    assert not any(r.path.startswith(("/mesos", "/agent")) for r in metronome.requests)


def test_only_a_metronome_url_refuses_a_command_that_prints_outputs(
    metronome: MetronomeEmulator,
) -> None:
    outcome = treadle(
        "run-job",
        "--job-id",
        "ci.version",
        "--cmd",
        "echo TREADLE_OUTPUT version=1.2.3",
        "--metronome-url",
        metronome.url,
    )
    assert outcome.code == 2, outcome
    assert outcome.error_lines == [
        "error: the job's command prints TREADLE_OUTPUT lines, which are read from its stdout in "
        "its Mesos sandbox: give --dcos-url (or a --metronome-url ending in /service/metronome) "
        "so treadle can read the job's Mesos sandbox"
    ]
    assert metronome.mutating_requests() == []


def test_only_a_metronome_url_says_why_a_failed_jobs_exit_code_is_unknown(
    metronome: MetronomeEmulator,
) -> None:
    metronome.script("ci.migrate", exit_code=3)
    outcome = treadle(
        "run-job", "--job-id", "ci.migrate", "--cmd", "./m.sh", "--metronome-url", metronome.url
    )
    assert outcome.code == 1, outcome
    assert outcome.result is not None
    assert outcome.result["error"]["message"] == (
        f"job ci.migrate run {outcome.result['run_id']} failed: its exit code is unknown: give "
        "--dcos-url (or a --metronome-url ending in /service/metronome) so treadle can read the "
        "job's Mesos sandbox"
    )


def test_a_metronome_url_under_admin_router_finds_the_sandbox(metronome: MetronomeEmulator) -> None:
    metronome.script("ci.version", files={"result.json": RESULT})
    outcome = treadle(
        "run-job",
        "--job-id",
        "ci.version",
        "--cmd",
        "true",
        "--output-file",
        "result.json",
        "--metronome-url",
        metronome.url + "/service/metronome/",
    )
    assert outcome.code == 0, outcome
    assert outcome.result is not None and outcome.result["outputs"]["version"] == "1.2.3"


def test_an_output_file_without_a_dcos_url_is_exit_2_before_anything_runs(
    metronome: MetronomeEmulator,
) -> None:
    outcome = treadle(
        "run-job",
        "--job-id",
        "ci.x",
        "--cmd",
        "true",
        "--output-file",
        "result.json",
        "--metronome-url",
        metronome.url,
    )
    assert outcome.code == 2, outcome
    assert "give --dcos-url" in outcome.stderr
    assert metronome.mutating_requests() == []


def test_server_groups_still_need_a_marathon_url(metronome: MetronomeEmulator) -> None:
    outcome = treadle(
        "deploy", "--app", "web", "--image", "web:1", "--metronome-url", metronome.url
    )
    assert outcome.code == 2, outcome
    assert outcome.error_lines == [
        "error: server groups live in Marathon: give --marathon-url or --dcos-url"
    ]


def test_run_job_needs_a_metronome_url(marathon: MarathonEmulator) -> None:
    outcome = treadle(
        "run-job", "--job-id", "ci.x", "--cmd", "true", "--marathon-url", marathon.url
    )
    assert outcome.code == 2, outcome
    assert "give --metronome-url or --dcos-url" in outcome.stderr


@pytest.mark.parametrize(
    ("connection", "marathon", "metronome", "root"),
    [
        (
            MarathonSettings(dcos_url="https://dcos.example/"),
            "https://dcos.example/service/marathon",
            "https://dcos.example/service/metronome",
            "https://dcos.example",
        ),
        (
            MarathonSettings(metronome_url="https://dcos.example/service/metronome"),
            None,
            "https://dcos.example/service/metronome",
            "https://dcos.example",
        ),
        (
            MarathonSettings(metronome_url="http://metronome.example:9000"),
            None,
            "http://metronome.example:9000",
            None,
        ),
        (
            MarathonSettings(
                marathon_url="https://m.example:8443", dcos_url="https://dcos.example"
            ),
            "https://m.example:8443",
            "https://dcos.example/service/metronome",
            "https://dcos.example",
        ),
    ],
)
def test_where_the_services_are(
    connection: MarathonSettings, marathon: str | None, metronome: str | None, root: str | None
) -> None:
    assert Urls.of(connection) == Urls(marathon, metronome, root)


def test_a_token_reaches_metronome_and_mesos_behind_admin_router() -> None:
    with MetronomeEmulator(**FAST_JOBS, auth=Token("s3cret-token"), admin_router=True) as emu:
        emu.script("ci.version", stdout="hi\n", files={"result.json": RESULT})
        ok = run_job(
            emu,
            "--job-id",
            "ci.version",
            "--cmd",
            "true",
            "--output-file",
            "result.json",
            env={"DCOS_ACS_TOKEN": "s3cret-token"},
        )
        assert {r.headers.get("authorization") for r in emu.requests} == {"token=s3cret-token"}
        assert any(r.path.startswith("/agent/") for r in emu.requests)
        refused = run_job(emu, "--job-id", "ci.version", "--cmd", "true", "--token", "wrong-token")
    assert ok.code == 0, ok
    assert ok.result is not None and ok.result["outputs"]["version"] == "1.2.3"
    assert refused.code == 4, refused
    assert "Metronome at" in refused.stderr and "refused the credentials (401)" in refused.stderr
    assert "s3cret-token" not in ok.stderr + ok.stdout and "wrong-token" not in refused.stderr


def test_a_service_account_logs_in_once_for_metronome_and_mesos(tmp_path: Path) -> None:
    key, public = rsa_key(tmp_path)
    with MetronomeEmulator(
        **FAST_JOBS, auth=ServiceAccount(uid="ci", public_key_pem=public)
    ) as emu:
        emu.script("ci.version", stdout="hi\n", files={"result.json": RESULT})
        outcome = run_job(
            emu,
            "--job-id",
            "ci.version",
            "--cmd",
            "true",
            "--output-file",
            "result.json",
            "--service-account-uid",
            "ci",
            "--service-account-key",
            str(key),
        )
        logins = [r for r in emu.requests if r.path == "/acs/api/v1/auth/login"]
    assert outcome.code == 0, outcome
    assert len(logins) == 1
    assert "| hi" in outcome.stderr


def test_transient_metronome_faults_are_retried(metronome: MetronomeEmulator) -> None:
    unavailable = iter(range(2))

    def leader_election(request: Request) -> Response | None:
        if (request.method, request.path) == ("POST", "/v1/jobs") and next(
            unavailable, None
        ) is not None:
            return Response(503, None)
        return None

    metronome.faults.append(leader_election)
    outcome = run_job(metronome, "--job-id", "ci.x", "--cmd", "true")
    assert outcome.code == 0, outcome
    assert len([r for r in metronome.requests if (r.method, r.path) == ("POST", "/v1/jobs")]) == 3


# -- the seam, called directly ----------------------------------------------------------


def test_every_definition_treadle_sends_validates_against_metronomes_schema(
    metronome: MetronomeEmulator, shared_data: Path, tmp_path: Path
) -> None:
    validate = job_definition_validator(shared_data)
    spec = tmp_path / "job.json"
    spec.write_text(
        json.dumps(
            {
                "id": "ci.spec",
                "run": {"ucr": {"image": {"id": "old"}}, "cpus": 1, "mem": 64, "disk": 10},
            }
        )
    )
    runs = [
        ["--job-id", "ci.cmd", "--cmd", "echo hi"],
        [
            "--job-id",
            "ci.image",
            "--image",
            "busybox:1",
            "--env",
            "A=1",
            "--cpus",
            "0.25",
            "--mem",
            "32",
        ],
        ["--spec", str(spec), "--image", "busybox:2", "--cmd", "true"],
        ["--job-id", "ci.cmd", "--cmd", "echo again"],
    ]
    for args in runs:
        assert run_job(metronome, *args).code == 0
    sent = job_posts(metronome)
    assert len(sent) == 5, "the second ci.cmd is a create refused (409), then an update"
    for definition in sent:
        validate(definition)
    assert sent[2]["run"]["ucr"] == {"image": {"id": "busybox:2"}}


def finished_run(metronome: MetronomeEmulator, job_id: str) -> tuple[MarathonProvider, JobRun]:
    provider = MarathonProvider(
        MarathonSettings(dcos_url=metronome.dcos_url), deadline=Deadline(30), console=Console()
    )
    definition = provider.job_definition(
        JobRequest(job_id, None, "./job.sh", {}, None, None, None, {})
    )
    run = provider.start_job(definition)
    while not provider.job_status(run).finished:
        time.sleep(0.02)
    return provider, run


def test_an_output_file_out_of_reach_names_the_routes_tried(metronome: MetronomeEmulator) -> None:
    metronome.script("ci.version", files={"result.json": RESULT}, seconds=0.05)
    metronome.tasks_enabled = metronome.state_enabled = False
    provider, run = finished_run(metronome, "ci.version")
    try:
        with pytest.raises(StageFailed) as failed:
            provider.job_file(run, "result.json")
    finally:
        provider.close()
    assert str(failed.value).startswith(
        "cannot read the output file result.json from the job's sandbox: cannot locate Mesos task "
    )
    assert str(failed.value).endswith(NEITHER_ROUTE)


def test_the_masters_state_locates_a_task_of_a_framework_torn_down_or_unreachable(
    metronome: MetronomeEmulator,
) -> None:
    provider, run = finished_run(metronome, "ci.gone")
    provider.close()
    state = httpx.get(metronome.url + "/mesos/master/state").json()
    [framework] = state["frameworks"]
    [task] = framework["completed_tasks"]
    torn_down = {**state, "frameworks": [], "completed_frameworks": [framework]}
    assert task_in_state(torn_down, task["id"]) == task
    unreachable = {**framework, "completed_tasks": [], "unreachable_tasks": [task]}
    assert task_in_state({**state, "frameworks": [unreachable]}, task["id"]) == task
    assert task_in_state(state, "ci_gone_other.1") is None


def test_the_provider_reads_a_whole_log_from_any_offset(metronome: MetronomeEmulator) -> None:
    text = "ünïcödé line\n" * 10000
    metronome.script("ci.log", stdout=text, seconds=0.05)
    provider = MarathonProvider(
        MarathonSettings(dcos_url=metronome.dcos_url), deadline=Deadline(30), console=Console()
    )
    try:
        definition = provider.job_definition(
            JobRequest("ci.log", None, "./log.sh", {}, None, None, None, {})
        )
        run = provider.start_job(definition)
        while not provider.job_status(run).finished:
            time.sleep(0.02)
        whole, end = provider.job_log(run, 0)
        rest, same_end = provider.job_log(run, len("ünïcödé line\n".encode()) * 9999)
    finally:
        provider.close()
    assert whole == text and end == len(text.encode())
    assert rest == "ünïcödé line\n" and same_end == end
