"""The Engine API's ServiceSpec of a server group's service and of a job run's
replicated-job service, and reading them back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from treadle.errors import InputError
from treadle.providers.engine import jobs, spec

if TYPE_CHECKING:
    from treadle.providers.engine.connection import Engine


def task_template(workload: spec.Workload, labels: dict[str, str]) -> dict[str, Any]:
    """The Engine API's TaskTemplate of a server group's or a job's tasks. Secrets and
    configs are named only: `with_ids` adds the ids the swarm gave them."""
    w = workload
    container: dict[str, Any] = {"Image": w.image, "Labels": labels, "Env": list(w.environment)}
    optional = {
        # Swarm's Command replaces the image's ENTRYPOINT, its Args the image's CMD.
        "Command": w.entrypoint,
        "Args": w.command,
        "Healthcheck": w.healthcheck,
        "StopGracePeriod": w.stop_grace,
        "StopSignal": w.stop_signal,
        "User": w.user,
        "Dir": w.working_dir,
        "Init": w.init,
        "ReadOnly": w.read_only,
        "Mounts": list(w.mounts) or None,
        "CapabilityAdd": list(w.cap_add) or None,
        "CapabilityDrop": list(w.cap_drop) or None,
        # /etc/hosts lines: "ADDRESS HOST".
        "Hosts": [f"{address} {host}" for host, address in w.extra_hosts] or None,
        "Ulimits": list(w.ulimits) or None,
        "Secrets": [dict(s) for s in w.secrets] or None,
        "Configs": [dict(c) for c in w.configs] or None,
    }
    container.update({k: v for k, v in optional.items() if v is not None})
    template: dict[str, Any] = {"ContainerSpec": container}
    limits = {
        k: v
        for k, v in (("NanoCPUs", w.nano_cpus), ("MemoryBytes", w.memory), ("Pids", w.pids))
        if v
    }
    reservations = {
        k: v
        for k, v in (("NanoCPUs", w.cpu_reservation), ("MemoryBytes", w.memory_reservation))
        if v
    }
    resources = {k: v for k, v in (("Limits", limits), ("Reservations", reservations)) if v}
    if resources:
        template["Resources"] = resources
    if w.restart_policy:
        template["RestartPolicy"] = w.restart_policy
    if w.placement:
        template["Placement"] = w.placement
    if w.logging:
        template["LogDriver"] = {"Name": w.logging[0], "Options": dict(w.logging[1])}
    if w.networks:
        template["Networks"] = [{"Target": n.name, "Aliases": list(n.aliases)} for n in w.networks]
    return template


def with_ids(template: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The template with the ids of its secrets and configs (resources.ensure's)."""
    container = dict(template["ContainerSpec"])
    for kind, noun in (("secrets", "Secret"), ("configs", "Config")):
        key = kind.capitalize()
        if key in container:
            container[key] = [
                {**ref, f"{noun}ID": ids[f"{kind}/{ref[f'{noun}Name']}"]} for ref in container[key]
            ]
    return {**template, "ContainerSpec": container}


def service_spec(
    workload: spec.Workload, name: str, labels: dict[str, str], replicas: int
) -> dict[str, Any]:
    """The Engine API's ServiceSpec (POST /services/create) for a server group, and under
    `declared` what must exist before it (not part of the Engine API's body)."""
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
    endpoint: dict[str, Any] = {"Ports": ports}
    if workload.endpoint_mode:
        if workload.endpoint_mode == "dnsrr" and any(p["PublishMode"] == "ingress" for p in ports):
            raise InputError(
                "spec: deploy.endpoint_mode dnsrr publishes no port through the routing mesh: "
                "give its ports mode: host"
            )
        endpoint["Mode"] = workload.endpoint_mode
    return {
        "Name": name,
        "Labels": labels,
        "TaskTemplate": task_template(workload, labels),
        "Mode": {"Replicated": {"Replicas": replicas}},
        "EndpointSpec": endpoint,
        "declared": workload.declared.as_json(),
    }


def job_spec(run: jobs.Job, node_id: str | None) -> dict[str, Any]:
    """The ServiceSpec of a job run: a replicated job of one task, never restarted, on
    node `node_id` when given."""
    template = {**task_template(run.workload, run.labels), "RestartPolicy": {"Condition": "none"}}
    if node_id:
        placement = template.get("Placement") or {}
        constraints = [*placement.get("Constraints", []), f"node.id=={node_id}"]
        template["Placement"] = {**placement, "Constraints": constraints}
    return {
        "Name": run.name,
        "Labels": run.labels,
        "TaskTemplate": template,
        "Mode": {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 1}},
        "declared": run.workload.declared.as_json(),
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
