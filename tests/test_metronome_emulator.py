"""The Metronome and Mesos emulator, exercised over real HTTP, and checked against the real
Metronome payloads (read through TREADLE_SHARED_DATA; those tests skip without it)."""

from __future__ import annotations

import base64
import contextlib
import gc
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from emulator import MetronomeEmulator, Token
from emulator.mesos import FRAMEWORK_ID
from test_emulator import assert_has_keys, load, load_raml, wait_until

STEP = 0.03
# The master event stream's heartbeat: often, so that a reader waiting for an event never
# waits long for something to read.
HEARTBEAT = 0.1
JOB = {
    "id": "ci.report",
    "description": "nightly report",
    "run": {"cmd": "./report.sh", "cpus": 0.1, "mem": 64, "disk": 0},
}


@pytest.fixture
def emu() -> Iterator[MetronomeEmulator]:
    with MetronomeEmulator(
        step_seconds=STEP, run_seconds=0.15, heartbeat_seconds=HEARTBEAT
    ) as emulator:
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


def one_done_one_running(
    emu: MetronomeEmulator, client: httpx.Client
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two runs of ci.report: one finished, one whose task runs for 30 s."""
    emu.script("ci.report", seconds=0.01)
    done = start(client)
    finished(client, done)
    emu.script("ci.report", seconds=30)
    running = start(client)
    wait_until(lambda: client.get(run_path(running)).json()["tasks"])
    return done, running


def test_master_state_and_tasks(emu: MetronomeEmulator, client: httpx.Client) -> None:
    done, running = one_done_one_running(emu, client)
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


# What the master writes for /master/state, a framework in it and a task in it
# (mesos src/master/readonly_handler.cpp: ReadOnlyHandler::state, FullFrameworkWriter;
# src/common/http.cpp: json(Task)), less what depends on the build and the flags.
MASTER_STATE_KEYS = {
    "version", "start_time", "elected_time", "id", "pid", "hostname", "capabilities",
    "activated_slaves", "deactivated_slaves", "unreachable_slaves", "leader", "leader_info",
    "slaves", "recovered_slaves", "frameworks", "completed_frameworks", "orphan_tasks",
    "unregistered_frameworks",
}  # fmt: skip
FRAMEWORK_KEYS = {
    "id", "name", "pid", "used_resources", "offered_resources", "capabilities", "hostname",
    "webui_url", "active", "connected", "recovered", "user", "failover_timeout", "checkpoint",
    "registered_time", "unregistered_time", "principal", "resources", "role", "tasks",
    "unreachable_tasks", "completed_tasks", "offers", "executors",
}  # fmt: skip
TASK_KEYS = {
    "id", "name", "framework_id", "executor_id", "slave_id", "state", "resources", "role",
    "statuses",
}  # fmt: skip


def task_in_state(state: dict[str, Any], task_id: str) -> tuple[str, dict[str, Any]]:
    """(the list it is in, the task) from the master's state."""
    found = [
        (key, task)
        for framework in state["frameworks"] + state["completed_frameworks"]
        for key in ("tasks", "unreachable_tasks", "completed_tasks")
        for task in framework[key]
        if task["id"] == task_id
    ]
    assert len(found) == 1, found
    return found[0]


def test_master_state_has_the_masters_shape_and_locates_a_task_as_tasks_does(
    emu: MetronomeEmulator, client: httpx.Client
) -> None:
    done, running = one_done_one_running(emu, client)
    state = client.get("/mesos/master/state").json()
    assert set(state) >= MASTER_STATE_KEYS
    [framework] = state["frameworks"]
    assert set(framework) >= FRAMEWORK_KEYS and state["completed_frameworks"] == []
    running_id = client.get(run_path(running)).json()["tasks"][0]["id"]
    done_id = finished(client, done)["successfulFinishedRuns"][0]["tasks"][0]
    for task_id, where in ((running_id, "tasks"), (done_id, "completed_tasks")):
        key, task = task_in_state(state, task_id)
        assert key == where and set(task) >= TASK_KEYS
        [listed] = client.get("/mesos/tasks", params={"task_id": task_id}).json()["tasks"]
        assert {k: task[k] for k in ("slave_id", "framework_id", "executor_id")} == {
            k: listed[k] for k in ("slave_id", "framework_id", "executor_id")
        }
        # A command task names no executor: the agent names it after the task.
        assert task["executor_id"] == "" and task["framework_id"] == framework["id"]
    assert client.get("/mesos/master/state.json").json()["frameworks"][0]["id"] == FRAMEWORK_ID


def test_agent_ids_look_like_the_masters_in_marathons_examples(
    shared_data: Path, emu: MetronomeEmulator, client: httpx.Client
) -> None:
    """Marathon's tasks carry the Mesos agent id as slaveId: <master id>-S<n>."""
    real = [t["slaveId"] for t in load(shared_data / "marathon/examples/tasks.json")["tasks"]]
    shape = re.compile(r"[0-9a-f-]+-S\d+")
    assert real and all(shape.fullmatch(x) for x in real), real
    finished(client, start(client))
    state = client.get("/mesos/master/state").json()
    ids = [s["id"] for s in state["slaves"]]
    ids += [t["slave_id"] for t in state["frameworks"][0]["completed_tasks"]]
    assert all(shape.fullmatch(x) for x in ids), ids


@pytest.mark.parametrize(
    ("tasks_enabled", "state_enabled"), [(False, True), (True, False), (False, False)]
)
def test_the_masters_task_routes_can_be_taken_away_as_admin_router_does(
    emu: MetronomeEmulator, client: httpx.Client, tasks_enabled: bool, state_enabled: bool
) -> None:
    emu.tasks_enabled, emu.state_enabled = tasks_enabled, state_enabled
    for path, enabled in (
        ("/mesos/tasks", tasks_enabled),
        ("/mesos/master/tasks", tasks_enabled),
        ("/mesos/master/state", state_enabled),
        ("/mesos/state.json", state_enabled),
    ):
        answer = client.get(path)
        if enabled:
            assert answer.status_code == 200, path
        else:
            assert (answer.status_code, answer.headers["content-type"]) == (404, "text/html"), path
            assert "404 Not Found" in answer.text


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


# -- the Mesos master's event stream (POST /mesos/api/v1, SUBSCRIBE) ------------------------

API = "/mesos/api/v1"
SUBSCRIBE = {"type": "SUBSCRIBE"}
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED"}


class Records:
    """A RecordIO stream (mesos docs/recordio.md) read as it comes: each record is its
    length in bytes, a newline and that many bytes of JSON."""

    def __init__(self, response: httpx.Response) -> None:
        self._chunks = response.iter_bytes()
        self._buffer = b""

    def next(self) -> tuple[dict[str, Any], float]:
        """The next event and the time.monotonic() it was whole."""
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                prefix = self._buffer[:newline]
                assert prefix.isdigit(), f"not a RecordIO length: {self._buffer[:40]!r}"
                end = newline + 1 + int(prefix)
                if len(self._buffer) >= end:
                    record, self._buffer = self._buffer[newline + 1 : end], self._buffer[end:]
                    event = json.loads(record)
                    assert isinstance(event, dict) and "type" in event, record[:200]
                    return event, time.monotonic()
            self._buffer += next(self._chunks)

    def until(
        self, done: Callable[[dict[str, Any]], bool], timeout: float = 2.0
    ) -> list[tuple[dict[str, Any], float]]:
        """Events up to the first that is `done`, that one included."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            seen.append(self.next())
            if done(seen[-1][0]):
                return seen
        raise AssertionError(f"not seen in {timeout} s: {[e['type'] for e, _ in seen]}")


@contextlib.contextmanager
def subscribed(client: httpx.Client) -> Iterator[tuple[dict[str, Any], Records]]:
    """The SUBSCRIBED event's payload and the rest of the stream."""
    with client.stream(
        "POST", API, json=SUBSCRIBE, headers={"Accept": "application/json"}, timeout=5
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.headers["transfer-encoding"] == "chunked"
        records = Records(response)
        first, _ = records.next()
        assert first["type"] == "SUBSCRIBED"
        # The master sends a HEARTBEAT right after SUBSCRIBED.
        assert records.next()[0] == {"type": "HEARTBEAT"}
        yield first["subscribed"], records


def task_of(event: dict[str, Any]) -> str | None:
    """The id of the task an event is about."""
    if event["type"] == "TASK_ADDED":
        return str(event["task_added"]["task"]["task_id"]["value"])
    if event["type"] == "TASK_UPDATED":
        return str(event["task_updated"]["status"]["task_id"]["value"])
    return None


def about(events: list[tuple[dict[str, Any], float]], task_id: str) -> list[str]:
    """TASK_ADDED, then the states of the TASK_UPDATED events, of one task."""
    return [
        e["type"] if e["type"] == "TASK_ADDED" else e["task_updated"]["state"]
        for e, _ in events
        if task_of(e) == task_id
    ]


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """A collection of the whole process (tens of ms on a small machine) would be counted
    against the emulator's promptness: none while measuring it."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def subscriber_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "MesosSubscriber"]


def test_subscribed_carries_the_state_in_v1_json(
    emu: MetronomeEmulator, client: httpx.Client
) -> None:
    done, running = one_done_one_running(emu, client)
    with subscribed(client) as (first, _):
        assert first["heartbeat_interval_seconds"] == HEARTBEAT
        state = first["get_state"]
        assert set(state) == {"get_tasks", "get_executors", "get_frameworks", "get_agents"}
        [task] = state["get_tasks"]["tasks"]
        [completed] = state["get_tasks"]["completed_tasks"]
        assert running["id"] in task["task_id"]["value"] and task["state"] in (
            "TASK_STAGING",
            "TASK_RUNNING",
        )
        assert done["id"] in completed["task_id"]["value"]
        assert completed["state"] == completed["status_update_state"] == "TASK_FINISHED"
        assert [s["state"] for s in completed["statuses"]] == ["TASK_RUNNING", "TASK_FINISHED"]
        assert completed["status_update_uuid"] == completed["statuses"][-1]["uuid"]
        [framework] = state["get_frameworks"]["frameworks"]
        assert framework["framework_info"]["name"] == "metronome"
        assert completed["framework_id"] == framework["framework_info"]["id"]
        agents = {a["agent_info"]["id"]["value"] for a in state["get_agents"]["agents"]}
        assert completed["agent_id"]["value"] in agents
        assert state["get_executors"] == {"executors": []}
        assert {r["name"]: r["scalar"]["value"] for r in completed["resources"]} == {
            "cpus": 0.1,
            "mem": 64.0,
            "disk": 0.0,
        }


@pytest.mark.parametrize(
    ("exit_code", "stop", "end"),
    [(0, False, "TASK_FINISHED"), (3, False, "TASK_FAILED"), (0, True, "TASK_KILLED")],
)
def test_a_task_is_told_added_running_and_ended_once_each_when_it_happens(
    emu: MetronomeEmulator, client: httpx.Client, exit_code: int, stop: bool, end: str
) -> None:
    emu.script("ci.report", exit_code=exit_code, seconds=30 if stop else 0.1)
    with (
        no_gc_pauses(),
        subscribed(client) as (first, records),
        subscribed(client) as (_, other),
    ):
        assert first["get_state"]["get_tasks"]["tasks"] == []
        run = start(client)
        events = records.until(lambda e: e["type"] == "TASK_ADDED")
        task_id = task_of(events[-1][0])
        assert task_id is not None and task_id.startswith(f"ci_report_{run['id']}.")
        added = events[-1][0]["task_added"]["task"]
        assert added["state"] == "TASK_STAGING" and "statuses" not in added
        events += records.until(lambda e: e.get("task_updated", {}).get("state") == "TASK_RUNNING")
        if stop:
            assert client.post(run_path(run) + "/actions/stop").status_code == 200
        events += records.until(lambda e: e.get("task_updated", {}).get("state") in TERMINAL)
        [finished_at] = emu.runs_finished_at()
        # A heartbeat later, nothing more was told about the task.
        events += records.until(lambda e: e["type"] == "HEARTBEAT")
        events += records.until(lambda e: e["type"] == "HEARTBEAT")

        assert about(events, task_id) == ["TASK_ADDED", "TASK_RUNNING", end]
        terminal, arrived = [(e, at) for e, at in events if task_of(e) == task_id][-1]
        assert 0 <= arrived - finished_at < 0.1, "told when it happened"
        update = terminal["task_updated"]
        status = update["status"]
        assert update["framework_id"] == added["framework_id"]
        assert status["agent_id"] == added["agent_id"] and status["source"] == "SOURCE_EXECUTOR"
        assert len(base64.b64decode(status["uuid"])) == 16
        assert abs(status["timestamp"] - (time.time() - time.monotonic() + finished_at)) < 0.05
        arrivals = [at for _, at in events]
        assert arrivals == sorted(arrivals)
        told_other = other.until(lambda e: e.get("task_updated", {}).get("state") in TERMINAL)
        assert about(told_other, task_id) == ["TASK_ADDED", "TASK_RUNNING", end]


def test_a_run_stopped_before_its_task_launched_tells_nothing(
    emu: MetronomeEmulator, client: httpx.Client
) -> None:
    with subscribed(client) as (_, records):
        run = start(client)
        assert client.post(run_path(run) + "/actions/stop").status_code == 200
        until = time.monotonic() + 4 * STEP + HEARTBEAT
        events = records.until(lambda e: time.monotonic() > until)
        assert [e["type"] for e, _ in events] == ["HEARTBEAT"] * len(events)


def test_a_subscriber_after_the_end_finds_the_task_completed_and_is_told_nothing_of_it(
    emu: MetronomeEmulator, client: httpx.Client
) -> None:
    emu.script("ci.report", seconds=0.01)
    task_id = finished(client, start(client))["successfulFinishedRuns"][0]["tasks"][0]
    with subscribed(client) as (first, records):
        completed = first["get_state"]["get_tasks"]["completed_tasks"]
        assert [(t["task_id"]["value"], t["state"]) for t in completed] == [
            (task_id, "TASK_FINISHED")
        ]
        events = records.until(lambda e: e["type"] == "HEARTBEAT")
        events += records.until(lambda e: e["type"] == "HEARTBEAT")
        assert [e["type"] for e, _ in events] == ["HEARTBEAT", "HEARTBEAT"]


def test_heartbeats_come_each_interval() -> None:
    with (
        MetronomeEmulator(heartbeat_seconds=0.05) as emu,
        httpx.Client(base_url=emu.url) as client,
        subscribed(client) as (first, records),
    ):
        assert first["heartbeat_interval_seconds"] == 0.05
        beats = [records.next() for _ in range(4)]
        assert [e for e, _ in beats] == [{"type": "HEARTBEAT"}] * 4
        gaps = [b - a for (_, a), (_, b) in zip(beats, beats[1:], strict=False)]
        assert all(0.04 < gap < 0.1 for gap in gaps), gaps


def test_a_big_snapshot_is_one_well_formed_record() -> None:
    with (
        MetronomeEmulator(snapshot_tasks=3000) as emu,
        httpx.Client(base_url=emu.url) as client,
        client.stream("POST", API, json=SUBSCRIBE) as response,
    ):
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if b"HEARTBEAT" in body:
                break
        prefix, rest = body.split(b"\n", 1)
        first = json.loads(rest[: int(prefix)])
        assert int(prefix) > 1_000_000
        assert rest[int(prefix) :] == b'20\n{"type":"HEARTBEAT"}'
        tasks = first["subscribed"]["get_state"]["get_tasks"]["tasks"]
        frameworks = first["subscribed"]["get_state"]["get_frameworks"]["frameworks"]
        [marathon] = [f for f in frameworks if f["framework_info"]["name"] == "marathon"]
        assert len(tasks) == 3000 and {t["state"] for t in tasks} == {"TASK_RUNNING"}
        assert {t["framework_id"]["value"] for t in tasks} == {
            marathon["framework_info"]["id"]["value"]
        }
        assert client.get("/mesos/tasks").json() == {"tasks": []}, "only the snapshot has them"


@pytest.mark.parametrize(
    ("headers", "body", "status", "text"),
    [
        ({"Content-Type": "text/plain"}, b'{"type": "SUBSCRIBE"}', 415, "Expecting 'Content-Type'"),
        ({}, b'{"type": "SUBSCRIBE"}', 400, "Expecting 'Content-Type' to be present"),
        ({"Content-Type": "application/json"}, b'{"type": ', 400, "Failed to parse body"),
        ({"Content-Type": "application/json"}, b"[]", 400, "Expecting a JSON object"),
        ({"Content-Type": "application/json"}, b'{"type": "NOPE"}', 400, "'type'"),
        (
            {"Content-Type": "application/json", "Accept": "text/html"},
            b'{"type": "SUBSCRIBE"}',
            406,
            "Expecting 'Accept' to allow",
        ),
        ({"Content-Type": "application/json"}, b'{"type": "GET_STATE"}', 501, "GET_STATE"),
    ],
)
def test_calls_the_master_refuses_or_the_emulator_does_not_implement(
    client: httpx.Client, headers: dict[str, str], body: bytes, status: int, text: str
) -> None:
    answer = client.post(API, content=body, headers=headers)
    assert (answer.status_code, answer.headers["content-type"]) == (
        status,
        "text/plain; charset=utf-8",
    )
    assert text in answer.text


def test_the_event_stream_is_guarded_and_can_be_refused() -> None:
    with (
        MetronomeEmulator(auth=Token("t0ken"), admin_router=True) as emu,
        httpx.Client(base_url=emu.url) as client,
    ):
        assert client.post(API, json=SUBSCRIBE).status_code == 401
        token = {"Authorization": "token=t0ken"}
        wrong_method = client.get(API, headers=token)
        assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
        emu.events_enabled = False
        for refused in (
            client.post(API, json=SUBSCRIBE, headers=token),
            client.get(API, headers=token),
        ):
            assert refused.status_code == 404 and "text/html" in refused.headers["content-type"]


def test_streams_end_with_their_client_and_with_the_emulator() -> None:
    emu = MetronomeEmulator()  # a heartbeat each 15 s: not what tells of the hang-up
    emu.start()
    with httpx.Client(base_url=emu.url) as client:
        with subscribed(client):
            assert len(subscriber_threads()) == 1
        wait_until(lambda: not subscriber_threads(), timeout=1)

        ended = threading.Event()

        def follow() -> None:
            with contextlib.suppress(httpx.HTTPError), subscribed(client) as (_, records):
                with contextlib.suppress(StopIteration):
                    while True:
                        records.next()
            ended.set()

        threading.Thread(target=follow, daemon=True).start()
        wait_until(subscriber_threads)
        emu.stop()
        assert ended.wait(2), "the stream outlived the emulator"
        assert not subscriber_threads()
