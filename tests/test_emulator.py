"""The Marathon emulator, exercised over real HTTP, and checked against real payloads.

Conformance tests read the real DC/OS payloads through TREADLE_SHARED_DATA and skip
when it is unset.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jsonschema
import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from emulator import Basic, MarathonEmulator, Request, Response, ServiceAccount, Token

FAST = {"deploy_seconds": 0.15, "task_start_seconds": 0.05, "health_seconds": 0.05}
FAST_FAILURES = {"failure_seconds": 0.05, "backoff_seconds": 0.05}

WEB = {
    "id": "/prod/us-east/web",
    "cmd": "python3 -m http.server $PORT0",
    "instances": 2,
    "cpus": 0.1,
    "mem": 64,
    "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0}],
}
DOCKER = {
    "id": "/prod/api",
    "instances": 2,
    "container": {"type": "DOCKER", "docker": {"image": "example/api:1"}},
    "healthChecks": [{"protocol": "HTTP", "path": "/"}],
}
# Fields Marathon computes; they must be stripped before a definition is sent back.
READ_ONLY = {
    "version",
    "versionInfo",
    "tasks",
    "tasksStaged",
    "tasksRunning",
    "tasksHealthy",
    "tasksUnhealthy",
    "deployments",
    "lastTaskFailure",
    "taskStats",
    "readinessCheckResults",
}

T = TypeVar("T")

# The emulator speaks plain HTTP; one shared TLS context spares every client from
# loading the CA bundle (a noticeable cost per test).
TLS = ssl.create_default_context()


def http(base_url: str, **kwargs: Any) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=30, verify=TLS, **kwargs)


def wait_until(predicate: Callable[[], T], timeout: float = 3.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.fixture
def emu() -> Iterator[MarathonEmulator]:
    with MarathonEmulator(**FAST, **FAST_FAILURES) as emulator:
        yield emulator


@pytest.fixture
def client(emu: MarathonEmulator) -> Iterator[httpx.Client]:
    with http(emu.url) as http_client:
        yield http_client


def deployments(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/v2/deployments")
    assert response.status_code == 200
    return response.json()


def get_app(client: httpx.Client, app_id: str, *embeds: str) -> dict[str, Any]:
    response = client.get(f"/v2/apps{app_id}", params=[("embed", e) for e in embeds])
    assert response.status_code == 200, response.text
    return response.json()["app"]


def deployed(client: httpx.Client, app_id: str) -> dict[str, Any] | None:
    """The app once its deployments are gone, else None."""
    app = get_app(client, app_id)
    return app if not app["deployments"] and not deployments(client) else None


# -- deployments and tasks --------------------------------------------------------------


def test_create_lists_a_deployment_until_tasks_run_healthy(client: httpx.Client) -> None:
    response = client.post("/v2/apps", json=WEB)
    assert response.status_code == 201
    created = response.json()
    deployment_id = response.headers["Marathon-Deployment-Id"]
    assert created["deployments"] == [{"id": deployment_id}]
    assert created["tasks"] == [] and created["tasksRunning"] == 0
    assert created["version"] == created["versionInfo"]["lastConfigChangeAt"]

    listed = deployments(client)
    assert [d["id"] for d in listed] == [deployment_id]
    assert listed[0]["affectedApps"] == ["/prod/us-east/web"]
    assert [s["actions"][0]["action"] for s in listed[0]["steps"]] == [
        "StartApplication",
        "ScaleApplication",
    ]
    assert get_app(client, "/prod/us-east/web")["tasksHealthy"] < 2

    app = wait_until(lambda: deployed(client, "/prod/us-east/web"))
    assert (
        app["tasksRunning"],
        app["tasksHealthy"],
        app["tasksStaged"],
        app["tasksUnhealthy"],
    ) == (2, 2, 0, 0)
    for task in app["tasks"]:
        assert task["state"] == "TASK_RUNNING"
        assert task["id"].startswith("prod_us-east_web.")
        assert task["version"] == app["version"]
        assert task["host"].endswith(".example")
        assert [r["alive"] for r in task["healthCheckResults"]] == [True]


def test_deployment_stays_listed_for_deploy_seconds() -> None:
    timings = {"deploy_seconds": 0.25, "task_start_seconds": 0.01, "health_seconds": 0.01}
    with MarathonEmulator(**timings) as emu, http(emu.url) as client:
        started = time.monotonic()
        client.post("/v2/apps", json={"id": "/quick", "cmd": "sleep 1", "instances": 1})
        wait_until(lambda: not deployments(client))
        assert time.monotonic() - started >= 0.25


def test_unhealthy_image_never_finishes_its_deployment(
    emu: MarathonEmulator, client: httpx.Client
) -> None:
    emu.unhealthy_images.add("example/api:1")
    client.post("/v2/apps", json=DOCKER)
    app = wait_until(lambda: (a := get_app(client, "/prod/api"))["tasksUnhealthy"] == 2 and a)
    assert app["tasksRunning"] == 2 and app["tasksHealthy"] == 0
    first_failures = app["tasks"][0]["healthCheckResults"][0]["consecutiveFailures"]
    time.sleep(0.3)  # twice deploy_seconds
    app = get_app(client, "/prod/api")
    assert len(deployments(client)) == 1 and app["deployments"]
    result = app["tasks"][0]["healthCheckResults"][0]
    assert result["alive"] is False and result["lastSuccess"] is None and result["lastFailure"]
    assert result["consecutiveFailures"] > first_failures


def test_failing_image_relaunches_and_records_each_failure(
    emu: MarathonEmulator, client: httpx.Client
) -> None:
    emu.failing_images.add("example/api:1")
    client.post("/v2/apps", json={**DOCKER, "instances": 1, "healthChecks": []})
    first = wait_until(lambda: get_app(client, "/prod/api").get("lastTaskFailure"))
    assert set(first) == {
        "appId",
        "host",
        "message",
        "state",
        "taskId",
        "timestamp",
        "version",
        "slaveId",
    }
    assert first["state"] == "TASK_FAILED" and first["appId"] == "/prod/api"
    second = wait_until(
        lambda: (
            (f := get_app(client, "/prod/api").get("lastTaskFailure"))
            and f["taskId"] != first["taskId"]
            and f
        )
    )
    assert second["timestamp"] > first["timestamp"]
    time.sleep(0.2)
    assert len(deployments(client)) == 1
    # lastTaskFailure is not part of the app list unless embedded.
    listed = client.get("/v2/apps").json()["apps"][0]
    assert "lastTaskFailure" not in listed
    embedded = client.get("/v2/apps", params={"embed": "apps.lastTaskFailure"}).json()["apps"][0]
    assert embedded["lastTaskFailure"]["state"] == "TASK_FAILED"


def parse_time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)  # Python 3.11 reads the trailing Z


def test_time_passes_between_requests(emu: MarathonEmulator, client: httpx.Client) -> None:
    """Nothing needs polling: a request after a quiet spell sees everything that happened."""
    emu.failing_images.add("example/api:1")
    created = client.post("/v2/apps", json={**DOCKER, "instances": 1, "healthChecks": []})
    time.sleep(0.6)  # a fail/relaunch cycle takes 0.15 s: start, run, fail, back off
    app = get_app(client, "/prod/api")
    failed_at = parse_time(app["lastTaskFailure"]["timestamp"])
    since_creation = (failed_at - parse_time(created.json()["version"])).total_seconds()
    assert since_creation >= 0.4  # the third failure or later, not the first
    for task in app["tasks"]:
        assert parse_time(task["stagedAt"]) > failed_at  # relaunched after it


def test_update_during_a_deployment_is_locked_unless_forced(client: httpx.Client) -> None:
    first = client.post("/v2/apps", json=WEB).headers["Marathon-Deployment-Id"]
    locked = client.put("/v2/apps/prod/us-east/web", json={"instances": 3})
    assert locked.status_code == 409
    assert locked.json() == {
        "message": "App is locked by one or more deployments. "
        "Override with the option '?force=true'. "
        "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
        "deployments": [{"id": first}],
    }
    forced = client.put(
        "/v2/apps/prod/us-east/web", params={"force": "true"}, json={"instances": 3}
    )
    assert forced.status_code == 200
    assert set(forced.json()) == {"version", "deploymentId"}
    assert [d["id"] for d in deployments(client)] == [forced.json()["deploymentId"]]
    assert wait_until(lambda: deployed(client, "/prod/us-east/web"))["tasksHealthy"] == 3


def test_scale_is_not_a_config_change(emu: MarathonEmulator, client: httpx.Client) -> None:
    emu.add_app(WEB)
    before = get_app(client, "/prod/us-east/web")
    response = client.put("/v2/apps/prod/us-east/web", json={"instances": 3})
    assert response.status_code == 200
    assert deployments(client)[0]["steps"] == [
        {"actions": [{"action": "ScaleApplication", "app": "/prod/us-east/web"}]}
    ]
    after = wait_until(lambda: deployed(client, "/prod/us-east/web"))
    assert after["version"] == response.json()["version"] != before["version"]
    assert after["versionInfo"]["lastScalingAt"] == after["version"]
    assert after["versionInfo"]["lastConfigChangeAt"] == before["versionInfo"]["lastConfigChangeAt"]
    assert {t["id"] for t in before["tasks"]} < {t["id"] for t in after["tasks"]}

    client.put("/v2/apps/prod/us-east/web", json={"instances": 1})
    scaled_down = get_app(client, "/prod/us-east/web")
    # Scale down kills the youngest tasks first, at once.
    assert [t["id"] for t in scaled_down["tasks"]] == [before["tasks"][0]["id"]]


def test_config_change_replaces_every_task(emu: MarathonEmulator, client: httpx.Client) -> None:
    emu.add_app(WEB)
    before = get_app(client, "/prod/us-east/web")
    response = client.put("/v2/apps/prod/us-east/web", json={"cmd": "sleep 600"})
    assert deployments(client)[0]["currentActions"][0]["action"] == "RestartApplication"
    # Old tasks keep serving until new ones are healthy (minimumHealthCapacity 1).
    assert {t["id"] for t in before["tasks"]} <= {
        t["id"] for t in get_app(client, "/prod/us-east/web")["tasks"]
    }
    after = wait_until(lambda: deployed(client, "/prod/us-east/web"))
    assert (
        after["versionInfo"]["lastConfigChangeAt"] == after["version"] == response.json()["version"]
    )
    assert not {t["id"] for t in before["tasks"]} & {t["id"] for t in after["tasks"]}
    assert {t["version"] for t in after["tasks"]} == {after["version"]}
    assert after["cmd"] == "sleep 600" and after["healthChecks"][0]["path"] == "/health"


def test_put_merges_unless_partial_update_is_false(
    emu: MarathonEmulator, client: httpx.Client
) -> None:
    emu.add_app({**WEB, "labels": {"team": "web"}})
    client.put("/v2/apps/prod/us-east/web", params={"force": "true"}, json={"env": {"A": "1"}})
    merged = get_app(client, "/prod/us-east/web")
    assert merged["labels"] == {"team": "web"} and merged["env"] == {"A": "1"}
    client.put(
        "/v2/apps/prod/us-east/web",
        params={"force": "true", "partialUpdate": "false"},
        json={"cmd": "sleep 1", "instances": 1},
    )
    replaced = get_app(client, "/prod/us-east/web")
    assert replaced["labels"] == {} and replaced["env"] == {} and replaced["healthChecks"] == []
    assert (replaced["cpus"], replaced["mem"]) == (1, 128)  # Marathon's defaults again


def test_resending_the_same_definition_changes_nothing(
    emu: MarathonEmulator, client: httpx.Client
) -> None:
    emu.add_app(WEB)
    before = get_app(client, "/prod/us-east/web")
    definition = {k: v for k, v in before.items() if k not in READ_ONLY}
    response = client.put("/v2/apps/prod/us-east/web", json=definition)
    assert response.status_code == 200
    after = get_app(client, "/prod/us-east/web")
    assert after["version"] == before["version"]
    assert [t["id"] for t in after["tasks"]] == [t["id"] for t in before["tasks"]]
    assert deployments(client)[0]["steps"] == []


def test_put_creates_a_missing_app(client: httpx.Client) -> None:
    response = client.put("/v2/apps/fresh", json={"cmd": "sleep 1", "instances": 1})
    assert response.status_code == 201
    assert response.headers["Marathon-Deployment-Id"] == response.json()["deploymentId"]
    assert get_app(client, "/fresh")["id"] == "/fresh"


def test_patch_merges_and_needs_an_existing_app(
    emu: MarathonEmulator, client: httpx.Client
) -> None:
    assert client.patch("/v2/apps/missing", json={"instances": 2}).status_code == 404
    emu.add_app(WEB)
    response = client.patch("/v2/apps/prod/us-east/web", json={"labels": {"a": "b"}})
    assert response.status_code == 200
    app = get_app(client, "/prod/us-east/web")
    assert app["labels"] == {"a": "b"} and app["cmd"] == WEB["cmd"]


def test_put_with_version_rolls_back(emu: MarathonEmulator, client: httpx.Client) -> None:
    emu.add_app(WEB)
    v1 = get_app(client, "/prod/us-east/web")["version"]
    client.put("/v2/apps/prod/us-east/web", json={"cmd": "sleep 600", "instances": 3})
    wait_until(lambda: deployed(client, "/prod/us-east/web"))
    v2 = get_app(client, "/prod/us-east/web")["version"]
    assert client.get("/v2/apps/prod/us-east/web/versions").json() == {"versions": [v2, v1]}
    assert client.get(f"/v2/apps/prod/us-east/web/versions/{v1}").json()["cmd"] == WEB["cmd"]

    response = client.put("/v2/apps/prod/us-east/web", json={"version": v1, "cmd": "ignored"})
    assert response.status_code == 200
    app = wait_until(lambda: deployed(client, "/prod/us-east/web"))
    assert app["cmd"] == WEB["cmd"] and app["instances"] == 2
    assert app["version"] == response.json()["version"] == app["versionInfo"]["lastConfigChangeAt"]
    unknown = client.put("/v2/apps/prod/us-east/web", json={"version": "2001-01-01T00:00:00.000Z"})
    assert unknown.status_code == 404


def test_restart_replaces_tasks_without_a_config_change(
    emu: MarathonEmulator, client: httpx.Client
) -> None:
    emu.add_app(WEB)
    before = get_app(client, "/prod/us-east/web")
    response = client.post("/v2/apps/prod/us-east/web/restart")
    assert response.status_code == 200
    after = wait_until(lambda: deployed(client, "/prod/us-east/web"))
    assert after["versionInfo"]["lastConfigChangeAt"] == before["versionInfo"]["lastConfigChangeAt"]
    assert not {t["id"] for t in before["tasks"]} & {t["id"] for t in after["tasks"]}


def test_delete_removes_the_app_at_once(emu: MarathonEmulator, client: httpx.Client) -> None:
    emu.add_app(WEB)
    response = client.delete("/v2/apps/prod/us-east/web")
    assert response.status_code == 200
    assert set(response.json()) == {"version", "deploymentId"}
    assert client.get("/v2/apps/prod/us-east/web").status_code == 404
    listed = deployments(client)
    assert listed[0]["currentActions"][0]["action"] == "StopApplication"
    wait_until(lambda: not deployments(client))
    # The group outlives its last app.
    assert client.get("/v2/groups/prod/us-east").json()["apps"] == []
    assert client.delete("/v2/apps/prod/us-east/web").status_code == 404


def test_delete_cancels_a_running_deployment(client: httpx.Client) -> None:
    client.post("/v2/apps", json=WEB)
    assert client.delete("/v2/apps/prod/us-east/web").status_code == 200
    assert [d["steps"][0]["actions"][0]["action"] for d in deployments(client)] == [
        "StopApplication"
    ]
    assert client.delete("/v2/apps/other", params={"force": "false"}).status_code == 404


def test_deleting_a_deployment_rolls_back_or_just_stops(client: httpx.Client) -> None:
    created = client.post("/v2/apps", json=WEB).headers["Marathon-Deployment-Id"]
    rollback = client.delete(f"/v2/deployments/{created}")
    assert rollback.status_code == 200
    assert client.get("/v2/apps/prod/us-east/web").status_code == 404  # creation rolled back
    assert deployments(client)[0]["currentActions"][0]["action"] == "StopApplication"
    again = client.post("/v2/apps", params={"force": "true"}, json=WEB).headers[
        "Marathon-Deployment-Id"
    ]
    stopped = client.delete(f"/v2/deployments/{again}", params={"force": "true"})
    assert stopped.status_code == 202
    assert deployments(client) == []
    assert client.delete(f"/v2/deployments/{again}").status_code == 404


def test_creating_an_existing_app_conflicts(emu: MarathonEmulator, client: httpx.Client) -> None:
    emu.add_app(WEB)
    response = client.post("/v2/apps", json=WEB)
    assert response.status_code == 409
    assert response.json() == {"message": "An app with id [/prod/us-east/web] already exists."}


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("definition", "path"),
    [
        ({"id": "/Prod/Web", "cmd": "x"}, "/id"),
        ({"id": "/prod/web_1", "cmd": "x"}, "/id"),
        ({"id": "/prod/-web", "cmd": "x"}, "/id"),
        ({"id": "/prod/tasks", "cmd": "x"}, "/id"),
        ({"id": "/web", "cmd": "x", "instances": -1}, "/instances"),
        ({"id": "/web", "cmd": "x", "cpus": -0.5}, "/cpus"),
        ({"id": "/web"}, "/"),
        (
            {"id": "/web", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 1.5}},
            "/upgradeStrategy/minimumHealthCapacity",
        ),
        ({"id": "/web", "cmd": "x", "tasksRunning": 3}, "/tasksRunning"),
        ({"id": "/web", "cmd": "x", "nonsense": True}, "/nonsense"),
    ],
)
def test_invalid_definitions_are_422(
    client: httpx.Client, definition: dict[str, Any], path: str
) -> None:
    response = client.post("/v2/apps", json=definition)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["message"] == "Object is not valid"
    assert path in [d["path"] for d in body["details"]]
    assert all(isinstance(e, str) for d in body["details"] for e in d["errors"])
    assert client.get("/v2/apps").json() == {"apps": []}


def test_invalid_id_in_put_url_is_422(client: httpx.Client) -> None:
    response = client.put("/v2/apps/Bad_Id", json={"cmd": "x"})
    assert response.status_code == 422
    assert response.json()["details"][0]["path"] == "/id"


@pytest.mark.parametrize(
    ("content", "path"),
    [
        (b"{not json", "/"),
        (b"[1, 2]", "/"),
        (json.dumps({"id": "/web", "cmd": "x", "instances": "3"}).encode(), "/instances"),
        (json.dumps({"id": "/web", "cmd": "x", "instances": 1.5}).encode(), "/instances"),
        (json.dumps({"id": "/web", "cmd": "x", "labels": {"a": 1}}).encode(), "/labels/a"),
        (json.dumps({"cmd": "x"}).encode(), "/id"),
    ],
)
def test_malformed_bodies_are_400(client: httpx.Client, content: bytes, path: str) -> None:
    response = client.post(
        "/v2/apps", content=content, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"] == "Invalid JSON"
    assert response.json()["details"][0]["path"] == path


def test_validators_turn_value_errors_into_422(emu: MarathonEmulator, client: httpx.Client) -> None:
    seen: list[dict[str, Any]] = []

    def no_root_user(definition: dict[str, Any]) -> None:
        seen.append(definition)
        if definition.get("user") == "root":
            raise ValueError("user must not be root")

    emu.validators.append(no_root_user)
    response = client.post("/v2/apps", json={"id": "/web", "cmd": "x", "user": "root"})
    assert response.status_code == 422
    assert response.json()["details"] == [{"path": "/", "errors": ["user must not be root"]}]
    assert client.post("/v2/apps", json={"id": "/web", "cmd": "x"}).status_code == 201
    client.put("/v2/apps/web", params={"force": "true"}, json={"instances": 2})
    assert seen[-1] == {"id": "/web", "instances": 2}  # the id comes from the URL


# -- reading ---------------------------------------------------------------------------------


def test_not_found_answers(client: httpx.Client) -> None:
    assert client.get("/v2/apps/nope").json() == {"message": "App '/nope' does not exist"}
    assert client.get("/v2/apps/nope").status_code == 404
    assert client.get("/v2/apps/nope/tasks").status_code == 404
    assert client.get("/v2/groups/nope").json() == {"message": "Group '/nope' does not exist"}
    assert client.get("/v2/apps/nope/*").status_code == 404
    assert client.get("/v2/unknown").status_code == 404
    assert client.post("/v2/info").status_code == 405


def test_app_list_filters_and_embeds(emu: MarathonEmulator, client: httpx.Client) -> None:
    emu.add_app(WEB)
    emu.add_app({**WEB, "id": "/prod/eu-west/web"})
    emu.add_app({**DOCKER, "id": "/staging/api"})

    def ids(response: httpx.Response) -> list[str]:
        return [a["id"] for a in response.json()["apps"]]

    assert ids(client.get("/v2/apps", params={"id": "US-EAST"})) == ["/prod/us-east/web"]
    assert ids(client.get("/v2/apps", params={"id": "web"})) == [
        "/prod/eu-west/web",
        "/prod/us-east/web",
    ]
    assert ids(client.get("/v2/apps", params={"cmd": "HTTP.SERVER"})) == [
        "/prod/eu-west/web",
        "/prod/us-east/web",
    ]
    plain = client.get("/v2/apps").json()["apps"][0]
    assert "tasks" not in plain and plain["tasksRunning"] == 2 and plain["deployments"] == []
    with_tasks = client.get(
        "/v2/apps", params=[("embed", "apps.tasks"), ("embed", "apps.taskStats")]
    )
    first = with_tasks.json()["apps"][0]
    assert len(first["tasks"]) == 2
    assert first["taskStats"]["totalSummary"]["stats"]["counts"]["running"] == 2
    readiness = client.get("/v2/apps/prod/us-east/web", params={"embed": "app.readiness"}).json()[
        "app"
    ]
    assert readiness["readinessCheckResults"] == [] and len(readiness["tasks"]) == 2
    transitive = client.get("/v2/apps/prod/*").json()
    assert [a["id"] for a in transitive["*"]] == ["/prod/eu-west/web", "/prod/us-east/web"]
    tasks = client.get("/v2/apps/prod/us-east/web/tasks").json()["tasks"]
    assert {t["appId"] for t in tasks} == {"/prod/us-east/web"}


def test_groups_are_implicit_from_app_ids(emu: MarathonEmulator, client: httpx.Client) -> None:
    emu.add_app(WEB)
    emu.add_app({**DOCKER, "id": "/prod/api"})
    root = client.get("/v2/groups").json()
    assert root["id"] == "/" and root["apps"] == [] and root["pods"] == []
    prod = root["groups"][0]
    assert prod["id"] == "/prod" and [a["id"] for a in prod["apps"]] == ["/prod/api"]
    assert prod["groups"][0]["id"] == "/prod/us-east"
    assert prod["groups"][0]["apps"][0]["id"] == "/prod/us-east/web"
    only_apps = client.get("/v2/groups/prod", params={"embed": "group.apps"}).json()
    assert "groups" not in only_apps and [a["id"] for a in only_apps["apps"]] == ["/prod/api"]
    with_tasks = client.get(
        "/v2/groups/prod/us-east", params=[("embed", "group.apps"), ("embed", "group.apps.tasks")]
    ).json()
    assert len(with_tasks["apps"][0]["tasks"]) == 2 and "tasksRunning" not in with_tasks["apps"][0]


def test_seeded_apps_are_running_and_healthy_at_once(emu: MarathonEmulator) -> None:
    emu.add_app(WEB)
    app = emu.app("prod/us-east/web")
    assert app is not None and app["tasksHealthy"] == 2 and app["deployments"] == []
    assert emu.app("/missing") is None
    emu.add_app({**DOCKER, "id": "/later"}, running=False)
    later = emu.app("/later")
    assert later is not None and later["tasksStaged"] == 2 and later["deployments"] == []
    assert wait_until(lambda: (a := emu.app("/later")) is not None and a["tasksHealthy"] == 2)
    with pytest.raises(ValueError):
        emu.add_app({"id": "/Bad", "cmd": "x"})


def test_ping_info_and_the_dcos_prefix(emu: MarathonEmulator, client: httpx.Client) -> None:
    assert client.get("/ping").text == "pong"
    info = client.get("/v2/info").json()
    assert info["name"] == "marathon" and info["elected"] is True
    emu.add_app(WEB)
    via_dcos = client.get(f"{emu.dcos_url}/service/marathon/v2/apps/prod/us-east/web")
    assert via_dcos.json()["app"]["id"] == "/prod/us-east/web"
    client.put(
        "/service/marathon/v2/apps/prod/us-east/web",
        params={"force": "true"},
        json={"instances": 1},
    )
    recorded = emu.mutating_requests()
    assert [(r.method, r.path, r.query, r.body) for r in recorded] == [
        ("PUT", "/v2/apps/prod/us-east/web", {"force": ["true"]}, {"instances": 1})
    ]
    assert recorded[0].headers["content-type"] == "application/json"
    assert emu.requests[0].path == "/ping"


def test_stop_ends_kept_alive_connections() -> None:
    emu = MarathonEmulator()
    with http(emu.start()) as client:
        assert client.get("/ping").status_code == 200
        emu.stop()
        with pytest.raises(httpx.TransportError):
            client.get("/ping")


def test_fault_hooks_answer_before_routing(emu: MarathonEmulator, client: httpx.Client) -> None:
    def unavailable(request: Request) -> Response | None:
        return (
            Response(503, {"message": "leader unknown"})
            if request.path.startswith("/v2/apps")
            else None
        )

    emu.faults.append(unavailable)
    assert client.get("/v2/apps").status_code == 503
    assert client.get("/v2/info").status_code == 200
    emu.faults.clear()
    assert client.get("/v2/apps").status_code == 200


# -- authentication ----------------------------------------------------------------------


def sign_rs256(key: rsa.RSAPrivateKey, claims: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64(json.dumps(claims).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_token_auth() -> None:
    with MarathonEmulator(auth=Token("s3cret")) as emu, http(emu.url) as client:
        missing = client.get("/v2/apps")
        assert missing.status_code == 401
        assert missing.json() == {"message": "Invalid username or password."}
        assert client.get("/v2/apps", headers={"Authorization": "token=wrong"}).status_code == 401
        assert client.get("/v2/apps", headers={"Authorization": "token=s3cret"}).status_code == 200
        assert client.get("/ping").status_code == 200  # Marathon's /ping needs no credentials


def test_basic_auth() -> None:
    with MarathonEmulator(auth=Basic("ci", "pw")) as emu, http(emu.url) as client:
        assert client.get("/v2/apps", auth=("ci", "wrong")).status_code == 401
        assert client.get("/v2/apps", auth=("ci", "pw")).status_code == 200


def test_service_account_login_and_token_expiry(rsa_key: rsa.RSAPrivateKey) -> None:
    account = ServiceAccount(uid="ci", public_key_pem=public_pem(rsa_key))
    with MarathonEmulator(auth=account) as emu, http(emu.dcos_url) as client:
        login = {"uid": "ci", "token": sign_rs256(rsa_key, {"uid": "ci", "exp": time.time() + 300})}
        response = client.post("/acs/api/v1/auth/login", json=login)
        assert response.status_code == 200
        headers = {"Authorization": f"token={response.json()['token']}"}
        assert client.get("/service/marathon/v2/apps", headers=headers).status_code == 200

        emu.expire_tokens()
        assert client.get("/service/marathon/v2/apps", headers=headers).status_code == 401
        relogin = client.post("/acs/api/v1/auth/login", json=login).json()["token"]
        assert (
            client.get("/v2/apps", headers={"Authorization": f"token={relogin}"}).status_code == 200
        )
        assert emu.mutating_requests() == []  # logins are not Marathon changes


@pytest.mark.parametrize(
    "claims_or_token",
    [
        {"uid": "ci", "exp": time.time() - 10},  # expired
        {"uid": "someone-else", "exp": time.time() + 300},
        "not-a-jwt",
    ],
)
def test_service_account_login_rejects_bad_jwts(
    rsa_key: rsa.RSAPrivateKey, claims_or_token: Any
) -> None:
    account = ServiceAccount(uid="ci", public_key_pem=public_pem(rsa_key))
    token = (
        claims_or_token
        if isinstance(claims_or_token, str)
        else sign_rs256(rsa_key, claims_or_token)
    )
    with MarathonEmulator(auth=account) as emu, http(emu.url) as client:
        response = client.post("/acs/api/v1/auth/login", json={"uid": "ci", "token": token})
        assert response.status_code == 401
        assert (
            response.json()["title"] == "Authentication failed" and response.json()["description"]
        )


def test_login_with_another_key_is_rejected(rsa_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    account = ServiceAccount(uid="ci", public_key_pem=public_pem(rsa_key))
    with MarathonEmulator(auth=account) as emu, http(emu.url) as client:
        token = sign_rs256(other, {"uid": "ci", "exp": time.time() + 300})
        assert (
            client.post("/acs/api/v1/auth/login", json={"uid": "ci", "token": token}).status_code
            == 401
        )


def test_admin_router_answers_html() -> None:
    with MarathonEmulator(auth=Token("t"), admin_router=True) as emu, http(emu.url) as client:
        response = client.get("/service/marathon/v2/apps")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "acsjwt"
        assert response.headers["Content-Type"].startswith("text/html")
        assert "<html>" in response.text
        assert client.get("/service/marathon/ping").status_code == 401  # Admin Router guards it
        emu.forbidden = True
        forbidden = client.get("/service/marathon/v2/apps", headers={"Authorization": "token=t"})
        assert forbidden.status_code == 403 and forbidden.headers["Content-Type"].startswith(
            "text/html"
        )


def test_forbidden_answers_json_from_marathon(emu: MarathonEmulator, client: httpx.Client) -> None:
    emu.forbidden = True
    response = client.post("/v2/apps", json=WEB)
    assert response.status_code == 403
    assert response.json() == {"message": "Not Authorized to perform this action!"}
    emu.forbidden = False
    assert client.get("/v2/apps").json() == {"apps": []}


# -- conformance with real payloads -----------------------------------------------------


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def load_raml(path: Path) -> Any:
    class RamlLoader(yaml.SafeLoader):
        pass

    # RAML pulls examples in with !include; the file name is enough here.
    RamlLoader.add_constructor("!include", lambda loader, node: loader.construct_scalar(node))
    return yaml.load(path.read_text(), Loader=RamlLoader)


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object", type(None): "null"}[type(value)]


def assert_has_keys(actual: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    """Every key of `expected` is in `actual`, with the same JSON type when both are non-null."""
    missing = sorted(set(expected) - set(actual))
    assert not missing, f"{where}: missing {missing}"
    for key, value in expected.items():
        if value is not None and actual[key] is not None:
            assert json_type(actual[key]) == json_type(value), (
                f"{where}.{key}: {actual[key]!r} vs {value!r}"
            )


def definition_of(app: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in app.items() if k not in READ_ONLY}


def test_apps_and_tasks_have_the_fields_of_a_real_answer(shared_data: Path) -> None:
    real_apps = load(shared_data / "marathon-lb/zdd_apps.json")["apps"]
    real_task_list = load(shared_data / "marathon/examples/app_tasks.json")["tasks"]
    with MarathonEmulator(**FAST) as emu, http(emu.url) as client:
        for real in real_apps:
            response = client.post("/v2/apps", json=definition_of(real))
            assert response.status_code == 201, response.text
        wait_until(lambda: not deployments(client))
        listed = {
            a["id"]: a
            for a in client.get("/v2/apps", params={"embed": "apps.tasks"}).json()["apps"]
        }
        for real in real_apps:
            ours = listed[real["id"]]
            assert_has_keys(ours, real, real["id"])
            for real_task in real["tasks"]:
                for task in ours["tasks"]:
                    assert_has_keys(task, real_task, f"{real['id']} task")
                    assert_has_keys(task, real_task_list[0], f"{real['id']} task (app_tasks.json)")
                    for result, real_result in zip(
                        task["healthCheckResults"], real_task["healthCheckResults"], strict=False
                    ):
                        assert_has_keys(result, real_result, "healthCheckResults")


def test_deployments_and_info_have_the_fields_of_the_examples(shared_data: Path) -> None:
    example_deployment = load(shared_data / "marathon/examples/deployments.json")[0]
    example_info = load(shared_data / "marathon/examples/info.json")
    example_result = load(shared_data / "marathon/examples/deployments_result.json")
    with MarathonEmulator(**FAST) as emu, http(emu.url) as client:
        client.post("/v2/apps", json=WEB)
        deployment = deployments(client)[0]
        assert_has_keys(deployment, example_deployment, "deployment")
        assert_has_keys(deployment["steps"][0], example_deployment["steps"][0], "deployment step")
        assert_has_keys(
            deployment["currentActions"][0],
            example_deployment["currentActions"][0],
            "current action",
        )
        update = client.put(
            "/v2/apps/prod/us-east/web", params={"force": "true"}, json={"instances": 1}
        ).json()
        assert_has_keys(update, example_result, "deployment result")
        info = client.get("/v2/info").json()
        assert_has_keys(info, example_info, "info")
        for section in ("marathon_config", "zookeeper_config", "http_config"):
            assert_has_keys(info[section], example_info[section], section)


def test_groups_have_the_fields_of_the_examples(shared_data: Path) -> None:
    example = load(shared_data / "marathon/examples/group.json")
    with MarathonEmulator(**FAST) as emu, http(emu.url) as client:
        emu.add_app(WEB)
        root = client.get("/v2/groups").json()
        assert_has_keys(root, example, "group")
        assert_has_keys(root["groups"][0], example["groups"][0], "subgroup")


def test_error_bodies_match_traits_raml(shared_data: Path) -> None:
    traits = load_raml(shared_data / "marathon/raml/traits.raml")
    apps_raml = load_raml(shared_data / "marathon/raml/v2_apps.raml")

    def example(trait: str, status: int) -> Any:
        return json.loads(traits[trait]["responses"][status]["body"]["application/json"]["example"])

    not_found = json.loads(
        apps_raml["/{app_id}"]["get"]["responses"][404]["body"]["application/json"]["example"]
    )
    with MarathonEmulator(**FAST, auth=Token("t")) as emu, http(emu.url) as client:
        assert client.get("/v2/apps").json() == example("secured", 401)
        client.headers["Authorization"] = "token=t"
        emu.forbidden = True
        assert client.get("/v2/apps").json() == example("secured", 403)
        emu.forbidden = False

        first = client.post("/v2/apps", json=WEB)
        locked = client.put("/v2/apps/prod/us-east/web", json={"instances": 5}).json()
        documented = example("deployable", 409)
        assert locked["message"] == documented["message"]
        assert locked["deployments"] == [{"id": first.headers["Marathon-Deployment-Id"]}]
        assert set(locked) == set(documented)

        duplicate = client.post("/v2/apps", json=WEB).json()
        assert set(duplicate) == set(example("objectCreator", 409))
        assert duplicate["message"] == example("objectCreator", 409)["message"].replace(
            "/existing_app", "/prod/us-east/web"
        )

        invalid = client.post(
            "/v2/apps", json={**WEB, "id": "/x", "upgradeStrategy": {"minimumHealthCapacity": 2}}
        )
        documented = example("objectValidator", 422)
        assert invalid.json()["message"] == documented["message"]
        assert documented["details"][0] in invalid.json()["details"]

        malformed = client.post("/v2/apps", json={**WEB, "id": 5}).json()
        assert malformed == example("jsonValidator", 400)

        assert client.get("/v2/apps/not_existent").json() == not_found


def test_load_groups_with_a_real_root_group_dump(shared_data: Path) -> None:
    dump = load(shared_data / "marathon/real-groups/155_1000.json")
    with MarathonEmulator(**FAST) as emu, http(emu.url) as client:
        emu.load_groups(dump)
        apps = client.get("/v2/apps").json()["apps"]
        assert len(apps) == len(dump["apps"]) == 1000
        assert deployments(client) == []
        group = client.get(f"/v2/groups{dump['id']}", params={"embed": "group.apps"}).json()
        assert group["id"] == dump["id"] and len(group["apps"]) == 1000
        by_id = {a["id"]: a for a in group["apps"]}
        for real in dump["apps"][:50]:
            ours = by_id[real["id"]]
            for key, value in real.items():
                assert ours[key] == value, f"{real['id']}.{key}"
        assert [g["id"] for g in client.get("/v2/groups").json()["groups"]] == [dump["id"]]


def test_stored_apps_validate_against_the_app_schema(shared_data: Path) -> None:
    schema = load(shared_data / "marathon/schema/AppDefinition.json")
    validator = jsonschema.Draft4Validator(schema)
    samples = [definition_of(a) for a in load(shared_data / "marathon-lb/zdd_apps.json")["apps"]]
    for path in sorted((shared_data / "marathon/apps").glob("*.json")):
        sample = load(path)
        if not list(validator.iter_errors(sample)):  # a few system-test apps predate this schema
            samples.append(sample)
    assert len(samples) > 10

    def schema_check(definition: dict[str, Any]) -> None:
        errors = [e.message for e in validator.iter_errors(definition)]
        if errors:
            raise ValueError("; ".join(errors))

    with MarathonEmulator(**FAST) as emu, http(emu.url) as client:
        emu.validators.append(schema_check)
        for index, sample in enumerate(samples):
            # zdd_apps.json is a Marathon 0.15 answer: nulls mean "absent", and storeUrls is
            # gone from the 1.7 schema.
            sample = {k: v for k, v in sample.items() if v is not None and k != "storeUrls"}
            sample["id"] = f"/conformance/app-{index}"
            response = client.post("/v2/apps", json=sample)
            assert response.status_code == 201, (sample, response.text)
            stored = get_app(client, sample["id"])
            # What a client sends back: no computed fields, no nulls (Marathon reads null as
            # absent) and no storeUrls (still answered, no longer in the schema).
            resent = {
                k: v for k, v in definition_of(stored).items() if v is not None and k != "storeUrls"
            }
            assert [e.message for e in validator.iter_errors(resent)] == [], sample["id"]
            again = client.put(f"/v2/apps{sample['id']}", params={"force": "true"}, json=resent)
            assert again.status_code == 200, again.text
            assert get_app(client, sample["id"])["version"] == stored["version"]  # nothing changed

        bad_constraint = {
            "id": "/conformance/bad",
            "cmd": "x",
            "constraints": [["hostname", "SOMETIMES"]],
        }
        response = client.post("/v2/apps", json=bad_constraint)
        assert (
            response.status_code == 422
            and "SOMETIMES" in response.json()["details"][0]["errors"][0]
        )


def test_dcos_cli_samples(shared_data: Path) -> None:
    samples = shared_data / "dcos-cli/marathon-apps"
    with MarathonEmulator(**FAST) as emu, http(emu.url) as client:
        for name in ("bad.json", "app_add_400.json"):
            response = client.post(
                "/v2/apps",
                content=(samples / name).read_bytes(),
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 400, name
            assert re.fullmatch(r"Invalid JSON", response.json()["message"])
        assert client.post("/v2/apps", json=load(samples / "sleep.json")).status_code == 201
