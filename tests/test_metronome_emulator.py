"""The Metronome and Mesos emulator, exercised over real HTTP, and checked against the real
Metronome payloads (read through TREADLE_SHARED_DATA; those tests skip without it)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from emulator import MetronomeEmulator, Token
from test_emulator import assert_has_keys, load, load_raml, wait_until

STEP = 0.03
JOB = {
    "id": "ci.report",
    "description": "nightly report",
    "run": {"cmd": "./report.sh", "cpus": 0.1, "mem": 64, "disk": 0},
}


@pytest.fixture
def emu() -> Iterator[MetronomeEmulator]:
    with MetronomeEmulator(step_seconds=STEP, run_seconds=0.15) as emulator:
        yield emulator


@pytest.fixture
def client(emu: MetronomeEmulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=10) as http_client:
        yield http_client


def start(client: httpx.Client, job: dict[str, Any] = JOB) -> dict[str, Any]:
    if client.get(f"/v1/jobs/{job['id']}").status_code == 404:
        assert client.post("/v1/jobs", json=job).status_code == 201
    response = client.post(f"/v1/jobs/{job['id']}/runs")
    assert response.status_code == 201, response.text
    return dict(response.json())


def run_path(run: dict[str, Any]) -> str:
    return f"/v1/jobs/{run['jobId']}/runs/{run['id']}"


def finished(client: httpx.Client, run: dict[str, Any]) -> dict[str, Any]:
    """The job's history once the run has left the active runs."""
    wait_until(lambda: client.get(run_path(run)).status_code == 404)
    return dict(
        client.get(f"/v1/jobs/{run['jobId']}", params={"embed": "history"}).json()["history"]
    )


def sandbox(client: httpx.Client, task_id: str) -> tuple[str, str]:
    """(agent id, executor directory) of a task, the way a client finds them."""
    [task] = client.get("/mesos/tasks", params={"task_id": task_id}).json()["tasks"]
    state = client.get(f"/agent/{task['slave_id']}/state").json()
    executors = [e for f in state["frameworks"] for e in f["executors"] + f["completed_executors"]]
    [executor] = [e for e in executors if e["id"] == task_id]
    return task["slave_id"], executor["directory"]


def read(
    client: httpx.Client, agent: str, path: str, offset: int = 0, **params: Any
) -> dict[str, Any]:
    response = client.get(
        f"/agent/{agent}/files/read", params={"path": path, "offset": offset, **params}
    )
    assert response.status_code == 200, response.text
    return dict(json.loads(response.content.decode("utf-8", "surrogateescape")))


# -- jobs ----------------------------------------------------------------------------------


def test_jobs_are_created_listed_replaced_and_deleted(client: httpx.Client) -> None:
    created = client.post(
        "/v1/jobs", json={**JOB, "schedules": [{"id": "nightly", "cron": "0 2 * * *"}]}
    )
    assert created.status_code == 201
    job = created.json()
    assert job["run"]["maxLaunchDelay"] == 3600 and job["run"]["restart"] == {"policy": "NEVER"}
    assert "schedules" not in job
    assert client.get("/v1/jobs/ci.report").json() == job
    assert [j["id"] for j in client.get("/v1/jobs").json()] == ["ci.report"]

    duplicate = client.post("/v1/jobs", json=JOB)
    assert (duplicate.status_code, duplicate.json()) == (
        409,
        {"message": "Job with this id already exists"},
    )

    replaced = client.put(
        "/v1/jobs/ci.report",
        json={"id": "ignored", "run": {"cmd": "./new.sh", "cpus": 1, "mem": 32, "disk": 0}},
    )
    assert replaced.status_code == 200
    assert replaced.json()["id"] == "ci.report" and "description" not in replaced.json(), (
        "PUT replaces the whole job"
    )
    shown = client.get("/v1/jobs/ci.report", params={"embed": "schedules"}).json()
    assert shown["run"]["cmd"] == "./new.sh" and [s["id"] for s in shown["schedules"]] == [
        "nightly"
    ]

    assert client.delete("/v1/jobs/ci.report").status_code == 200
    assert client.get("/v1/jobs/ci.report").json() == {
        "id": "ci.report",
        "message": "Job not found",
    }
    assert client.put("/v1/jobs/ci.report", json=JOB).status_code == 404


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({**JOB, "id": "CI_Report"}, "/id"),
        ({**JOB, "instances": 1}, "/instances"),
        ({"id": "ci.x", "run": {"cmd": "true", "cpus": 0.1, "mem": 64}}, "/run/disk"),
        ({"id": "ci.x", "run": {"cmd": "true", "cpus": 0.1, "mem": 16, "disk": 0}}, "/run/mem"),
        ({"id": "ci.x", "run": {"cpus": 0.1, "mem": 64, "disk": 0}}, "/run"),
        (
            {
                "id": "ci.x",
                "run": {**JOB["run"], "docker": {"image": "a"}, "ucr": {"image": {"id": "b"}}},
            },
            "/run",
        ),
        ({"id": "ci.x", "run": {**JOB["run"], "healthChecks": []}}, "/run/healthChecks"),
    ],
)
def test_jobs_metronome_would_refuse_are_422(
    client: httpx.Client, body: dict[str, Any], path: str
) -> None:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["message"] == "Object is not valid"
    assert path in [d["path"] for d in response.json()["details"]]


def test_validators_and_malformed_json(emu: MetronomeEmulator, client: httpx.Client) -> None:
    def no_root(job: dict[str, Any]) -> None:
        if job["run"].get("user") == "root":
            raise ValueError("/run/user: root is not allowed here")

    emu.validators.append(no_root)
    refused = client.post("/v1/jobs", json={**JOB, "run": {**JOB["run"], "user": "root"}})
    assert refused.status_code == 422 and "root is not allowed" in refused.text
    malformed = client.post(
        "/v1/jobs", content=b'{"id": ', headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["message"] == "Invalid JSON"
    assert client.post("/v1/jobs", json=JOB).status_code == 201


# -- runs ----------------------------------------------------------------------------------


def test_a_run_goes_through_its_states_then_only_the_history_knows_it() -> None:
    # Steps long enough for a poll every few milliseconds to see each state.
    with (
        MetronomeEmulator(step_seconds=0.1, run_seconds=0.1) as emu,
        httpx.Client(base_url=emu.url) as client,
    ):
        emu.script("ci.report", stdout="one\ntwo\n")
        states_then_history(client)


def states_then_history(client: httpx.Client) -> None:
    run = start(client)
    assert (run["status"], run["tasks"], run["completedAt"]) == ("INITIAL", [], None)
    seen: list[tuple[str, tuple[str, ...]]] = []
    while (answer := client.get(run_path(run))).status_code == 200:
        state = (answer.json()["status"], tuple(t["status"] for t in answer.json()["tasks"]))
        if not seen or seen[-1] != state:
            seen.append(state)
        time.sleep(0.005)
    assert seen == [
        ("INITIAL", ()),
        ("STARTING", ()),
        ("ACTIVE", ("TASK_STAGING",)),
        ("ACTIVE", ("TASK_RUNNING",)),
    ]
    assert answer.json() == {
        "jobSpec": "ci.report",
        "id": run["id"],
        "message": "Job Run not found",
    }

    history = client.get("/v1/jobs/ci.report", params={"embed": "history"}).json()["history"]
    [entry] = history["successfulFinishedRuns"]
    assert entry["id"] == run["id"] and entry["createdAt"] == run["createdAt"]
    assert entry["finishedAt"] > entry["createdAt"] and len(entry["tasks"]) == 1
    assert entry["tasks"][0].startswith(f"ci_report_{run['id']}.")
    assert (history["successCount"], history["failureCount"], history["failedFinishedRuns"]) == (
        1,
        0,
        [],
    )
    assert client.get("/v1/jobs/ci.report/runs").json() == []


def test_a_failing_run_is_in_the_failed_history_with_its_executors_last_words(
    emu: MetronomeEmulator, client: httpx.Client
) -> None:
    emu.script("ci.report", stdout="working\n", stderr="fatal: no disk\n", exit_code=2)
    run = start(client)
    history = finished(client, run)
    [entry] = history["failedFinishedRuns"]
    agent, directory = sandbox(client, entry["tasks"][0])
    assert (
        client.get("/mesos/tasks", params={"task_id": entry["tasks"][0]}).json()["tasks"][0][
            "state"
        ]
        == "TASK_FAILED"
    )
    stderr = read(client, agent, f"{directory}/stderr")["data"]
    assert "fatal: no disk\n" in stderr
    assert re.search(r"\] Command exited with status 2 \(pid: \d+\)\n$", stderr), stderr


def test_stop_kills_the_task_and_the_run_fails(
    emu: MetronomeEmulator, client: httpx.Client
) -> None:
    emu.script("ci.report", stdout="long\n", seconds=30)
    run = start(client)
    wait_until(lambda: client.get(run_path(run)).json()["status"] == "ACTIVE")
    stopped = client.post(run_path(run) + "/actions/stop")
    assert stopped.status_code == 200
    assert emu.stopped_runs() == [run["id"]]
    history = finished(client, run)
    [entry] = history["failedFinishedRuns"]
    [task] = client.get("/mesos/tasks", params={"task_id": entry["tasks"][0]}).json()["tasks"]
    assert task["state"] == "TASK_KILLED"
    assert [s["state"] for s in task["statuses"]][-1] == "TASK_KILLED"
    agent, directory = sandbox(client, task["id"])
    assert (
        "Command terminated with signal Terminated"
        in read(client, agent, f"{directory}/stderr")["data"]
    )
    assert client.post(run_path(run) + "/actions/stop").status_code == 404, (
        "a finished run cannot be stopped"
    )


def test_a_run_stopped_before_its_task_launched_fails_without_tasks(client: httpx.Client) -> None:
    run = start(client)
    assert client.post(run_path(run) + "/actions/stop").status_code == 200
    history = finished(client, run)
    assert [(r["id"], r["tasks"]) for r in history["failedFinishedRuns"]] == [(run["id"], [])]


def test_embeds_active_runs_and_history_summary(client: httpx.Client) -> None:
    run = start(client)
    job = client.get(
        "/v1/jobs/ci.report", params=[("embed", "activeRuns"), ("embed", "historySummary")]
    ).json()
    assert [r["id"] for r in job["activeRuns"]] == [run["id"]]
    assert job["historySummary"] == {
        "successCount": 0,
        "failureCount": 0,
        "lastSuccessAt": None,
        "lastFailureAt": None,
    }
    assert client.delete("/v1/jobs/ci.report").status_code == 409, "active runs protect the job"
    assert (
        client.delete("/v1/jobs/ci.report", params={"stopCurrentJobRuns": "true"}).status_code
        == 200
    )


# -- Mesos ---------------------------------------------------------------------------------


def test_the_sandbox_grows_while_the_task_runs_and_keeps_its_files(
    emu: MetronomeEmulator, client: httpx.Client
) -> None:
    emu.script(
        "ci.report",
        stdout="".join(f"line {n}\n" for n in range(10)),
        files={"out/result.json": b'{"ok": true}'},
        seconds=0.4,
    )
    run = start(client)
    wait_until(lambda: client.get(run_path(run)).json()["tasks"])
    task_id = client.get(run_path(run)).json()["tasks"][0]["id"]
    agent, directory = sandbox(client, task_id)
    state = client.get(f"/agent/{agent}/state").json()
    assert state["frameworks"][0]["executors"][0]["tasks"][0]["id"] == task_id
    assert (
        client.get(
            f"/agent/{agent}/files/download", params={"path": f"{directory}/out/result.json"}
        ).status_code
        == 404
    )

    sizes = []
    while client.get(run_path(run)).status_code == 200:
        sizes.append(read(client, agent, f"{directory}/stdout", -1)["offset"])
        time.sleep(0.02)
    assert sizes[0] < sizes[-1], "stdout is written as the task runs"
    whole = read(client, agent, f"{directory}/stdout")
    assert whole == {"data": "".join(f"line {n}\n" for n in range(10)), "offset": 0}
    assert read(client, agent, f"{directory}/stdout", 5, length=3) == {"data": "0\nl", "offset": 5}
    download = client.get(
        f"/agent/{agent}/files/download", params={"path": f"{directory}/out/result.json"}
    )
    assert (download.content, download.headers["content-type"]) == (
        b'{"ok": true}',
        "application/octet-stream",
    )
    missing = client.get(
        f"/agent/{agent}/files/read", params={"path": f"{directory}/nothing", "offset": 0}
    )
    assert (missing.status_code, missing.content) == (404, b"")
    after = client.get(f"/agent/{agent}/state").json()["frameworks"][0]
    assert (
        after["executors"] == []
        and after["completed_executors"][0]["completed_tasks"][0]["state"] == "TASK_FINISHED"
    )


def test_a_read_is_capped_at_16_pages_and_may_cut_a_character(
    emu: MetronomeEmulator, client: httpx.Client
) -> None:
    text = "é" * 40000  # 80000 bytes
    emu.script("ci.report", stdout=text, seconds=0.01)
    run = start(client)
    task_id = finished(client, run)["successfulFinishedRuns"][0]["tasks"][0]
    agent, directory = sandbox(client, task_id)
    first = read(client, agent, f"{directory}/stdout", 1)
    raw = first["data"].encode("utf-8", "surrogateescape")
    assert len(raw) == 65536 and raw == text.encode()[1:65537]


def test_master_state_and_tasks(emu: MetronomeEmulator, client: httpx.Client) -> None:
    emu.script("ci.report", seconds=0.01)
    done = start(client)
    finished(client, done)
    emu.script("ci.report", seconds=30)
    running = start(client)
    wait_until(lambda: client.get(run_path(running)).json()["tasks"])
    state = client.get("/mesos/master/state").json()
    [framework] = state["frameworks"]
    assert framework["name"] == "metronome"
    assert [t["state"] for t in framework["tasks"]] in (["TASK_STAGING"], ["TASK_RUNNING"])
    assert [t["state"] for t in framework["completed_tasks"]] == ["TASK_FINISHED"]
    assert {s["id"] for s in state["slaves"]} >= {framework["tasks"][0]["slave_id"]}
    listed = client.get("/mesos/tasks").json()["tasks"]
    assert [t["id"] for t in listed] == [
        framework["tasks"][0]["id"],
        framework["completed_tasks"][0]["id"],
    ]
    assert client.get("/mesos/tasks", params={"task_id": "nope"}).json() == {"tasks": []}
    unknown_agent = client.get("/agent/no-such-agent/state")
    assert unknown_agent.status_code == 404 and "text/html" in unknown_agent.headers["content-type"]


def test_admin_router_guards_metronome_and_mesos() -> None:
    with (
        MetronomeEmulator(auth=Token("t0ken"), admin_router=True) as emu,
        httpx.Client(base_url=emu.url) as client,
    ):
        for path in ("/service/metronome/v1/jobs", "/mesos/master/state", "/agent/x/state"):
            denied = client.get(path)
            assert (denied.status_code, denied.headers["WWW-Authenticate"]) == (401, "acsjwt"), path
        assert (
            client.get(
                "/service/metronome/v1/jobs", headers={"Authorization": "token=t0ken"}
            ).json()
            == []
        )


# -- conformance with real payloads ----------------------------------------------------------


def common_keys(examples: list[dict[str, Any]]) -> dict[str, Any]:
    """What every example shows, nested one level for `run`."""
    keys = set.intersection(*(set(e) for e in examples))
    return {k: examples[0][k] for k in keys}


def test_jobs_and_runs_have_the_fields_of_the_examples(
    shared_data: Path, client: httpx.Client
) -> None:
    jobs = load(shared_data / "metronome/examples/job_list.json")
    run = start(client)
    job = client.get("/v1/jobs/ci.report").json()
    assert_has_keys(job, common_keys(jobs), "job")
    assert_has_keys(job["run"], common_keys([j["run"] for j in jobs]), "job run spec")
    assert_has_keys(run, load(shared_data / "metronome/examples/run.json"), "run")
    for example in load(shared_data / "metronome/examples/run_list.json"):
        assert_has_keys(client.get("/v1/jobs/ci.report/runs").json()[0], example, "run list")


def test_error_bodies_match_the_raml(shared_data: Path, client: httpx.Client) -> None:
    raml = load_raml(shared_data / "metronome/raml/jobs.raml")

    def example(*path: Any) -> dict[str, Any]:
        node: Any = raml
        for key in path:
            node = node[key]
        return dict(json.loads(node["body"]["application/json"]["example"]))

    assert set(example("/{jobId}", "get", "responses", 404)) <= set(
        client.get("/v1/jobs/nope").json()
    )
    start(client)
    missing_run = client.get("/v1/jobs/ci.report/runs/nope").json()
    assert set(example("/{jobId}", "/runs", "/{runId}", "get", "responses", 404)) <= set(
        missing_run
    )
    invalid = client.post(
        "/v1/jobs", json={"id": "ci.x", "run": {"cmd": "x", "cpus": 1, "mem": 1, "disk": 0}}
    ).json()
    documented = example("post", "responses", 422)
    assert invalid["message"] == documented["message"] and set(invalid["details"][0]) == set(
        documented["details"][0]
    )


def test_real_jobs_are_accepted_and_answered_as_the_schema_allows(
    shared_data: Path, emu: MetronomeEmulator, client: httpx.Client
) -> None:
    validator = jsonschema.Draft4Validator(
        load(shared_data / "metronome/schema/jobspec.schema.json")
    )

    def schema_check(job: dict[str, Any]) -> None:
        errors = [e.message for e in validator.iter_errors(job)]
        if errors:
            raise ValueError("; ".join(errors))

    emu.validators.append(schema_check)
    samples = [
        load(p)
        for p in sorted((shared_data / "metronome/examples").glob("job_*.json"))
        if p.name != "job_list.json"
    ]
    samples += [load(shared_data / "metronome/examples/job.json")] + load(
        shared_data / "metronome/examples/job_list.json"
    )
    samples += [
        load(p)
        for p in sorted((shared_data / "dcos-cli/metronome-jobs").glob("*.json"))
        if p.name not in ("bad.json", "schema-config.json") and not p.name.startswith("sch-")
    ]
    accepted = 0
    for sample in samples:
        response = client.post("/v1/jobs", json=sample)
        if not validator.is_valid(sample):
            assert response.status_code == 422, sample["id"]
            continue
        assert response.status_code in (201, 409), (sample["id"], response.text)
        stored = client.get(f"/v1/jobs/{sample['id']}").json()
        assert list(validator.iter_errors(stored)) == [], sample["id"]
        assert client.put(f"/v1/jobs/{sample['id']}", json=stored).json() == stored, (
            "an answer resent changes nothing"
        )
        accepted += 1
    assert accepted >= 10
    bad = client.post(
        "/v1/jobs",
        content=(shared_data / "dcos-cli/metronome-jobs/bad.json").read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400
