"""One-off jobs on Swarm: a run is a `replicated-job` service of one task, named and
labelled as treadle.providers.engine.jobs says.

Two gaps of Swarm (20.10) shape it: removing a job service neither stops its running
task (moby/moby#44312) nor removes the containers of its finished ones (moby/moby#42789).
So a run is stopped by asking for 0 completions, which Swarm honours by stopping the task
wherever it runs, and once its outputs are read the service is removed along with the
run's containers on this node. Its output file is copied out of its container, which is
only reachable on the node treadle talks to: a run asked for one is placed on that node.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import docker.errors

from treadle.console import Console
from treadle.errors import StageFailed
from treadle.providers.base import JobRequest, JobRun, JobStatus, LogStream
from treadle.providers.engine import jobs, resources, spec
from treadle.providers.engine.connection import translated, where
from treadle.providers.swarm.services import job_spec, update, with_ids
from treadle.waiting import pause, poll_intervals

if TYPE_CHECKING:
    from treadle.providers.engine.connection import Engine

# Task states of a job run that has ended; the task's exit code is only known for those
# whose container ran.
JOB_ENDED = ("complete", "failed", "rejected", "shutdown", "orphaned", "remove")
JOB_RAN = ("complete", "failed", "shutdown")
# A job service asking for no more completions: Swarm stops its task.
JOB_STOPPED = {"ReplicatedJob": {"MaxConcurrent": 1, "TotalCompletions": 0}}
# How long a stopped run may take beyond its stop grace period before treadle moves on.
JOB_STOP_MARGIN = 10.0


class ServiceJobs:
    """The JobProvider part of the Swarm provider."""

    api: Engine
    console: Console
    node_id: str

    def job_definition(self, job: JobRequest) -> dict[str, Any]:
        return job_spec(jobs.plan(job, spec.SWARM), self.node_id if job.output_file else None)

    def start_job(self, definition: dict[str, Any]) -> JobRun:
        labels = definition["Labels"]
        run = JobRun(labels[jobs.LABEL_JOB], labels[jobs.LABEL_JOB_RUN])
        with translated(f"starting run {run.run_id} of job {run.job_id}"):
            ids = resources.ensure(self.api, definition.get("declared") or {}, labels, swarm=True)
            self.api.create_service(
                with_ids(definition["TaskTemplate"], ids),
                name=definition["Name"],
                labels=labels,
                mode=definition["Mode"],
            )
        return run

    def _job_task(self, run: JobRun) -> dict[str, Any] | None:
        """The run's one task (it is never restarted), None until Swarm has made it."""
        try:
            tasks = self.api.tasks(filters={"service": jobs.resource_name(run.job_id, run.run_id)})
        except docker.errors.NotFound:
            raise StageFailed(
                f"the service of run {run.run_id} of job {run.job_id} was removed while it ran"
            ) from None
        return tasks[0] if tasks else None

    def job_status(self, run: JobRun) -> JobStatus:
        with translated(f"reading run {run.run_id} of job {run.job_id}"):
            task = self._job_task(run)
        if task is None:
            return JobStatus("new", finished=False)
        status = task["Status"]
        state = status["State"]
        if state not in JOB_ENDED:
            return JobStatus(state, finished=False)
        container = status.get("ContainerStatus") or {}
        ran = state in JOB_RAN and container.get("ContainerID")
        return JobStatus(
            state,
            finished=True,
            succeeded=state == "complete",
            exit_code=container.get("ExitCode") if ran else None,
            message=None if state == "complete" else status.get("Err") or status.get("Message"),
        )

    def job_log(self, run: JobRun, offset: int, stream: LogStream = "stdout") -> tuple[str, int]:
        with translated(f"reading the {stream} of run {run.run_id} of job {run.job_id}"):
            chunks = self.api.service_logs(
                jobs.resource_name(run.job_id, run.run_id),
                stdout=stream == "stdout",
                stderr=stream == "stderr",
                is_tty=False,
            )
            data = b"".join(chunks)
        return jobs.decoded_from(data, offset)

    def job_file(self, run: JobRun, path: str) -> bytes | None:
        with translated(f"copying {path} out of run {run.run_id} of job {run.job_id}"):
            task = self._job_task(run) or {}
            container = (task.get("Status") or {}).get("ContainerStatus") or {}
            if not container.get("ContainerID"):
                raise StageFailed(f"cannot read {path}: run {run.run_id} started no container")
            try:
                return jobs.read_file(self.api, container["ContainerID"], path)
            except docker.errors.NotFound:
                raise StageFailed(
                    f"cannot read {path}: run {run.run_id} ran on swarm node "
                    f"{task.get('NodeID')}, and treadle copies files only from the node it "
                    f"talks to ({where()})"
                ) from None

    def stop_job(self, run: JobRun) -> None:
        """Ask for no completions and wait until Swarm has stopped the task."""
        name = jobs.resource_name(run.job_id, run.run_id)
        with translated(f"stopping run {run.run_id} of job {run.job_id}"):
            try:
                service = self.api.inspect_service(name)
            except docker.errors.NotFound:
                return
            current = service["Spec"]
            update(self.api, service, labels=current["Labels"], mode=JOB_STOPPED)
            grace = current["TaskTemplate"]["ContainerSpec"].get("StopGracePeriod") or 0
            end = time.monotonic() + grace / 10**9 + JOB_STOP_MARGIN
            for interval in poll_intervals():
                tasks = self.api.tasks(filters={"service": service["ID"]})
                if all(t["Status"]["State"] in JOB_ENDED for t in tasks):
                    return
                if time.monotonic() >= end:
                    self.console.warn(f"run {run.run_id} of job {run.job_id} is still stopping")
                    return
                pause(interval)

    def finish_job(self, run: JobRun) -> None:
        with translated(f"removing run {run.run_id} of job {run.job_id}"):
            try:
                self.api.remove_service(jobs.resource_name(run.job_id, run.run_id))
            except docker.errors.NotFound:
                pass
            for container in self.api.containers(all=True, filters=jobs.run_filter(run.run_id)):
                try:
                    self.api.remove_container(container["Id"], force=True)
                except docker.errors.APIError as e:
                    # Swarm removes a stopped run's container itself, maybe at this moment.
                    if e.status_code not in (404, 409):
                        raise
