"""treadle reads every real Marathon payload in the shared data, and every app definition
it builds from a real spec is one that Marathon's own schema accepts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from treadle import __version__
from treadle.errors import InputError
from treadle.naming import Cluster, ServerGroupName
from treadle.providers.base import NewServerGroup, server_group_labels
from treadle.providers.marathon import apps

from .schemas import app_definition_validator

# Deliberately malformed upstream files; treadle must refuse them, not read them.
MALFORMED = {"bad.json"}


def json_files(root: Path) -> Iterator[Path]:
    for folder in (
        "marathon/examples",
        "marathon/apps",
        "marathon-lb",
        "dcos-cli/marathon-apps",
        "marathon/real-groups",
    ):
        yield from sorted((root / folder).glob("*.json"))


def app_objects(document: Any) -> Iterator[dict[str, Any]]:
    """Every object that is an app: has an id and a way to run (cmd, args or container)."""
    if isinstance(document, dict):
        is_app = isinstance(document.get("id"), str) and any(
            k in document for k in ("cmd", "args", "container", "instances")
        )
        # Pods (`containers`, `spec`) and groups (`apps`) are not apps.
        if is_app and not {"apps", "containers", "spec"} & set(document):
            yield document
        for value in document.values():
            yield from app_objects(value)
    elif isinstance(document, list):
        for item in document:
            yield from app_objects(item)


def as_server_group(app: dict[str, Any], name: str = "web-prod-v001") -> dict[str, Any]:
    parent = apps.parent_of(app["id"]) if app["id"].startswith("/") else "/"
    return {**app, "id": apps.app_id(parent, name)}


def test_every_real_payload_parses(shared_data: Path) -> None:
    seen = 0
    for path in json_files(shared_data):
        if path.name in MALFORMED:
            continue
        document = json.loads(path.read_text())
        for app in app_objects(document):
            group = apps.to_server_group(as_server_group(app))
            assert group is not None, path
            assert group.instances >= 0
            assert isinstance(group.labels, dict)
            assert "version" not in apps.writable(app)
            seen += 1
    assert seen > 1000, "the real group dumps alone hold more than 1000 apps"


def test_real_go_marathon_responses_parse(shared_data: Path) -> None:
    methods = yaml.safe_load((shared_data / "go-marathon/methods.yml").read_text())
    parsed = 0
    for method in methods:
        try:
            body = json.loads(method.get("content") or "null")
        except json.JSONDecodeError:
            continue
        for app in app_objects(body):
            assert apps.to_server_group(as_server_group(app)) is not None
            parsed += 1
    assert parsed > 0


def test_real_group_dump_lists_direct_apps_only(shared_data: Path) -> None:
    root = json.loads((shared_data / "marathon/real-groups/155_1000.json").read_text())
    direct = apps.apps_of_group(root)
    assert len(direct) == 1000
    assert all(apps.parent_of(a["id"]) == root["id"] for a in direct)
    for group in root.get("groups", []):
        assert all(apps.parent_of(a["id"]) == group["id"] for a in apps.apps_of_group(group))


def test_health_reads_the_real_zdd_app(shared_data: Path) -> None:
    """zdd_apps.json holds real tasks with health check results."""
    app = json.loads((shared_data / "marathon-lb/zdd_apps.json").read_text())["apps"][0]
    healthy_tasks = [
        t for t in app["tasks"] if all(r["alive"] for r in t.get("healthCheckResults", []))
    ]
    assert app["tasksHealthy"] == len(healthy_tasks)


def real_specs(root: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((root / "marathon/apps").glob("*.json")) + sorted(
        (root / "dcos-cli/marathon-apps").glob("*.json")
    ):
        if path.name in MALFORMED or path.name == "app_add_400.json":
            continue
        yield path.name, json.loads(path.read_text())


def test_definitions_built_from_real_specs_validate_against_marathons_schema(
    shared_data: Path,
) -> None:
    validate = app_definition_validator(shared_data)
    name = ServerGroupName(Cluster("web", "prod"), 1)
    checked = 0
    for file, spec in real_specs(shared_data):
        try:
            validate({"id": "/x", **spec})
        except ValueError:
            continue  # written for another Marathon version than the schema's
        definition = apps.build_definition(
            NewServerGroup(
                name,
                "/prod/us-east",
                "registry.example/web:1.0",
                2,
                spec,
                server_group_labels(name, __version__, "2026-01-01T00:00:00.000Z"),
            )
        )
        assert definition["id"] == "/prod/us-east/web-prod-v001", file
        assert definition["container"]["docker"]["image"] == "registry.example/web:1.0"
        assert definition["labels"]["treadle.cluster"] == "web-prod"
        validate(definition)
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize(
    ("spec", "fix"),
    [
        ({"instancez": 2}, "unknown Marathon app field"),
        ({"cpus": "lots"}, "cpus must be a number"),
        ({"mem": -1}, "mem must be a number"),
        ({"labels": {"team": 7}}, "label 'team' must be a string"),
        ({"env": ["A=1"]}, "env must be an object"),
        ({"container": {"type": "COMPOSE"}}, "container.type"),
    ],
)
def test_a_spec_marathon_would_refuse_is_refused_first(spec: dict[str, Any], fix: str) -> None:
    name = ServerGroupName(Cluster("web"), 0)
    with pytest.raises(InputError, match=fix):
        apps.build_definition(NewServerGroup(name, "/", "web:1", 1, spec, {}))


@pytest.mark.parametrize(
    ("region", "canonical"),
    [
        ("/", "/"),
        ("", "/"),
        ("prod", "/prod"),
        ("/prod/us-east/", "/prod/us-east"),
        ("/a.b/c-d", "/a.b/c-d"),
    ],
)
def test_regions_are_group_paths(region: str, canonical: str) -> None:
    assert apps.check_region(region) == canonical


@pytest.mark.parametrize("region", ["/Prod", "/prod//x", "/-prod", "/prod_1", "/ prod"])
def test_invalid_regions_are_refused(region: str) -> None:
    with pytest.raises(InputError, match="invalid region"):
        apps.check_region(region)
