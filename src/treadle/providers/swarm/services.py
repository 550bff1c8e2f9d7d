"""The Engine API's ServiceSpec of a server group's service and of a job run's
replicated-job service, and reading them back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.errors import InputError
from treadle.providers.engine import jobs, spec

if TYPE_CHECKING:
    from treadle.providers.engine.connection import Engine


def task_template(workload: spec.Workload, labels: dict[str, str]) -> dict[str, Any]:
    """The Engine API's TaskTemplate of a server group's or a job's tasks."""
    container: dict[str, Any] = {
        "Image": workload.image,
        "Labels": labels,
        "Env": list(workload.environment),
    }
    if workload.entrypoint is not None:
        # Swarm's Command replaces the image's ENTRYPOINT.
        container["Command"] = workload.entrypoint
    if workload.command is not None:
        # Compose's `command` replaces the image's CMD, which Swarm calls Args.
        container["Args"] = workload.command
    if workload.healthcheck is not None:
        container["Healthcheck"] = workload.healthcheck
    if workload.stop_grace is not None:
        container["StopGracePeriod"] = workload.stop_grace
    template: dict[str, Any] = {"ContainerSpec": container}
    limits = {
        k: v for k, v in (("NanoCPUs", workload.nano_cpus), ("MemoryBytes", workload.memory)) if v
    }
    if limits:
        template["Resources"] = {"Limits": limits}
    return template


def service_spec(
    workload: spec.Workload, name: str, labels: dict[str, str], replicas: int
) -> dict[str, Any]:
    """The Engine API's ServiceSpec (POST /services/create) for a server group."""
    ports = []
    for i, port in enumerate(workload.ports):
        if port.host_ip is not None:
            raise InputError(
                f"spec: ports[{i}]: Swarm publishes a port on every address of every node; "
                "leave the host address out"
            )
        published = {"PublishedPort": port.published} if port.published else {}
        ports.append(
            {
                "Protocol": port.protocol,
                "TargetPort": port.target,
                "PublishMode": port.mode or "ingress",
                **published,
            }
        )
    return {
        "Name": name,
        "Labels": labels,
        "TaskTemplate": task_template(workload, labels),
        "Mode": {"Replicated": {"Replicas": replicas}},
        "EndpointSpec": {"Ports": ports},
    }


def job_spec(run: jobs.Job, node_id: str | None) -> dict[str, Any]:
    """The ServiceSpec of a job run: a replicated job of one task, never restarted, on
    node `node_id` when given."""
    template = {**task_template(run.workload, run.labels), "RestartPolicy": {"Condition": "none"}}
    if node_id:
        template["Placement"] = {"Constraints": [f"node.id=={node_id}"]}
    return {
        "Name": run.name,
        "Labels": run.labels,
        "TaskTemplate": template,
        "Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
    }


def replicas(service: dict[str, Any]) -> int:
    """The replicas of a ServiceSpec."""
    return int(((service.get("Mode") or {}).get("Replicated") or {}).get("Replicas") or 0)


def labels_of(service: dict[str, Any]) -> dict[str, str]:
    """The labels of a ServiceSpec."""
    return dict(service.get("Labels") or {})


def update(
    api: Engine, service: dict[str, Any], *, labels: dict[str, str], mode: dict[str, Any]
) -> None:
    """Change a service's labels and mode and nothing else, so that no task is replaced,
    at the version read: the engine refuses it ("update out of sequence") if the service
    changed meanwhile."""
    current = service["Spec"]
    api.update_service(
        service["ID"],
        service["Version"]["Index"],
        task_template=current["TaskTemplate"],
        name=current["Name"],
        labels=labels,
        mode=mode,
        update_config=current.get("UpdateConfig"),
        rollback_config=current.get("RollbackConfig"),
        endpoint_spec=current.get("EndpointSpec"),
    )
