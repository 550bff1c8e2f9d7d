"""Marathon's JSON answers, rendered from the scheduler state at a point in time."""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from .apps import parent_ids
from .state import App, Deployment, MarathonState, Task

APP_EMBEDS = ("counts", "deployments", "tasks", "lastTaskFailure", "readiness", "taskStats")
EMBED_PREFIXES = ("group.apps.", "apps.", "app.")


def resolve_app_embeds(values: list[str]) -> set[str]:
    """Marathon's InfoEmbedResolver: any of the prefixes (or none), plus the old aliases."""
    embeds: set[str] = set()
    for value in values:
        name = next((value[len(p) :] for p in EMBED_PREFIXES if value.startswith(p)), value)
        if name == "tasks":
            embeds |= {"tasks", "deployments"}  # deprecated coupling Marathon keeps
        elif name == "failures":
            embeds |= {"tasks", "lastTaskFailure", "deployments"}
        elif name in APP_EMBEDS:
            embeds.add(name)
    return embeds


def resolve_group_embeds(values: list[str]) -> tuple[set[str], set[str]]:
    """(group embeds, app embeds); without any embed Marathon shows apps, groups and pods."""
    if not values:
        return {"apps", "groups", "pods"}, set()
    group_embeds = {
        v[len("group.") :] for v in values if v in ("group.apps", "group.groups", "group.pods")
    }
    app_embeds = resolve_app_embeds([v for v in values if v.startswith("group.apps.")])
    return group_embeds, app_embeds


def _checked(state: MarathonState, task: Task, now: float) -> bool:
    """The task has health check results: its first check (health_seconds after start) ran."""
    return (
        task.health_checked
        and task.running(now)
        and now >= task.running_at + state.timings.health_seconds
    )


def _health_results(state: MarathonState, app: App, task: Task, now: float) -> list[dict[str, Any]]:
    """One result per health check; checks run every health_seconds once the task runs."""
    if not _checked(state, task, now):
        return []
    interval = state.timings.health_seconds
    first = task.running_at + interval
    checks = int((now - first) / interval) + 1 if interval > 0 else 1
    latest = state.timestamp(first + (checks - 1) * interval)
    alive = task.healthy_at is not None
    result = {
        "alive": alive,
        "consecutiveFailures": 0 if alive else checks,
        "firstSuccess": state.timestamp(first) if alive else None,
        "lastFailure": None if alive else latest,
        "lastSuccess": latest if alive else None,
        "taskId": task.id,
    }
    return [dict(result) for _ in app.definition["healthChecks"]]


def task_json(state: MarathonState, app: App, task: Task, now: float) -> dict[str, Any]:
    running = task.running(now)
    body: dict[str, Any] = {
        "id": task.id,
        "appId": task.app_id,
        "host": task.agent.host,
        "ipAddresses": [{"ipAddress": task.agent.ip, "protocol": "IPv4"}],
        "ports": list(task.ports),
        "servicePorts": list(task.service_ports),
        "slaveId": task.agent.slave_id,
        "state": "TASK_RUNNING" if running else "TASK_STAGING",
        "stagedAt": state.timestamp(task.staged_at),
        "startedAt": state.timestamp(task.running_at) if running else None,
        "version": task.version,
        "region": "primary",
        "zone": "a",
        "role": "*",
    }
    if task.health_checked:
        body["healthCheckResults"] = _health_results(state, app, task, now)
    return body


def _counts(state: MarathonState, tasks: list[Task], now: float) -> dict[str, int]:
    running = [x for x in tasks if x.running(now)]
    checked = [x for x in running if _checked(state, x, now)]
    healthy = sum(1 for x in checked if x.healthy_at is not None)
    return {
        "staged": len(tasks) - len(running),
        "running": len(running),
        "healthy": healthy,
        "unhealthy": len(checked) - healthy,
    }


def _stats(state: MarathonState, tasks: list[Task], now: float) -> dict[str, Any]:
    stats: dict[str, Any] = {"counts": _counts(state, tasks, now)}
    lifetimes = [now - x.running_at for x in tasks if x.running(now)]
    if lifetimes:
        stats["lifeTime"] = {
            "averageSeconds": statistics.fmean(lifetimes),
            "medianSeconds": statistics.median(lifetimes),
        }
    return {"stats": stats}


def task_stats(state: MarathonState, app: App, now: float) -> dict[str, Any]:
    """The taskStats embed: each group of tasks is only present when non-empty."""
    groups = {
        "startedAfterLastScaling": [
            x for x in app.tasks if state.timestamp(x.staged_at) >= app.last_scaling_at
        ],
        "withLatestConfig": [x for x in app.tasks if x.generation == app.generation],
        "withOutdatedConfig": [x for x in app.tasks if x.generation != app.generation],
        "totalSummary": list(app.tasks),
    }
    return {name: _stats(state, tasks, now) for name, tasks in groups.items() if tasks}


def app_json(state: MarathonState, app: App, now: float, embeds: set[str]) -> dict[str, Any]:
    body = app.view()
    tasks = sorted(app.tasks, key=lambda x: x.staged_at)
    if "counts" in embeds:
        counts = _counts(state, tasks, now)
        body.update(
            tasksStaged=counts["staged"],
            tasksRunning=counts["running"],
            tasksHealthy=counts["healthy"],
            tasksUnhealthy=counts["unhealthy"],
        )
    if "deployments" in embeds:
        body["deployments"] = [
            {"id": d.id} for d in state.deployments.values() if d.app_id == app.id
        ]
    if "readiness" in embeds:
        # Readiness checks are not simulated: tasks are ready as soon as they run.
        body["readinessCheckResults"] = []
    if "tasks" in embeds:
        body["tasks"] = [task_json(state, app, x, now) for x in tasks]
    if "lastTaskFailure" in embeds and app.last_failure is not None:
        body["lastTaskFailure"] = dict(app.last_failure)
    if "taskStats" in embeds:
        body["taskStats"] = task_stats(state, app, now)
    return body


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    steps = [
        {"actions": [{"action": action, "app": deployment.app_id}]} for action in deployment.actions
    ]
    # Every step but the last completes at once (StartApplication only registers the
    # app), so a listed deployment is always in its last step.
    current = steps[-1]["actions"] if steps else []
    return {
        "id": deployment.id,
        "version": deployment.version,
        "affectedApps": [deployment.app_id],
        "affectedPods": [],
        "steps": steps,
        "currentActions": [{**action, "readinessCheckResults": []} for action in current],
        "currentStep": len(steps),
        "totalSteps": len(steps),
    }


def group_json(
    state: MarathonState, group_id: str, now: float, group_embeds: set[str], app_embeds: set[str]
) -> dict[str, Any]:
    """A group and, as embedded, its direct apps and (recursively) its subgroups."""
    apps_in: dict[str, list[App]] = defaultdict(list)
    for app in state.apps.values():
        apps_in[parent_ids(app.id)[-1]].append(app)
    groups_in: dict[str, list[str]] = defaultdict(list)
    for other in state.groups:
        if other != "/":
            groups_in[parent_ids(other)[-1]].append(other)

    def render(gid: str) -> dict[str, Any]:
        body: dict[str, Any] = {"id": gid}
        if "apps" in group_embeds:
            body["apps"] = [
                app_json(state, a, now, app_embeds)
                for a in sorted(apps_in[gid], key=lambda a: a.id)
            ]
        if "groups" in group_embeds:
            body["groups"] = [render(child) for child in sorted(groups_in[gid])]
        if "pods" in group_embeds:
            body["pods"] = []
        body["dependencies"] = []
        body["version"] = state.groups[gid]
        return body

    return render(group_id)


def info_json(leader: str) -> dict[str, Any]:
    """GET /v2/info, shaped like Marathon's (values describe this emulator)."""
    return {
        "name": "marathon",
        "version": "1.5.0",
        "buildref": "emulator",
        "elected": True,
        "leader": leader,
        "frameworkId": "7d0a4f3e-6c1b-4b3a-9a52-5f0c2e8d1b6a-0001",
        "marathon_config": {
            "access_control_allow_origin": ["*"],
            "checkpoint": True,
            "decline_offer_duration": 120000,
            "default_network_name": "dcos",
            "env_vars_prefix": "",
            "executor": "//cmd",
            "failover_timeout": 604800,
            "features": [],
            "framework_name": "marathon",
            "ha": True,
            "hostname": leader.split(":")[0],
            "launch_token": 100,
            "launch_token_refresh_interval": 30000,
            "leader_proxy_connection_timeout_ms": 5000,
            "leader_proxy_read_timeout_ms": 10000,
            "local_port_max": 20000,
            "local_port_min": 10000,
            "master": "zk://zk-1.example:2181/mesos",
            "max_instances_per_offer": 5,
            "mesos_bridge_name": "mesos-bridge",
            "mesos_heartbeat_failure_threshold": 5,
            "mesos_heartbeat_interval": 15000,
            "mesos_leader_ui_url": "http://master.example:5050/",
            "mesos_role": "*",
            "mesos_user": "root",
            "min_revive_offers_interval": 5000,
            "offer_matching_timeout": 3000,
            "on_elected_prepare_timeout": 180000,
            "reconciliation_initial_delay": 15000,
            "reconciliation_interval": 600000,
            "scale_apps_initial_delay": 15000,
            "scale_apps_interval": 300000,
            "store_cache": True,
            "task_launch_confirm_timeout": 300000,
            "task_launch_timeout": 300000,
            "task_lost_expunge_initial_delay": 300000,
            "task_lost_expunge_interval": 30000,
            "task_reservation_timeout": 20000,
            "webui_url": f"http://{leader}",
        },
        "zookeeper_config": {
            "zk": "zk://zk-1.example:2181/marathon",
            "zk_compression": True,
            "zk_compression_threshold": 65536,
            "zk_connection_timeout": 10000,
            "zk_max_node_size": 1024000,
            "zk_max_versions": 50,
            "zk_session_timeout": 10000,
            "zk_timeout": 10000,
        },
        "http_config": {"http_port": int(leader.rsplit(":", 1)[1]), "https_port": 8443},
    }
