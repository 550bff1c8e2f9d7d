"""One-off jobs on the Docker engine: a run is one container, run once and removed when
its outputs are read (the run's plan, names and log reading are treadle.providers.engine's)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import docker.errors

from treadle.errors import StageFailed
from treadle.providers.base import JobRequest, JobRun, JobStatus, LogStream
from treadle.providers.docker.containers import JOB_RESTART_POLICY, container_config
from treadle.providers.engine import jobs, resources, spec
from treadle.providers.engine.connection import translated

if TYPE_CHECKING:
    from treadle.providers.engine.connection import Engine


class ContainerJobs:
    """The JobProvider part of the Docker provider."""

    api: Engine

    def _create(self, name: str, config: dict[str, Any]) -> str:
        raise NotImplementedError

    def job_definition(self, job: JobRequest) -> dict[str, Any]:
        run = jobs.plan(job, spec.DOCKER)
        return {
            "name": run.name,
            "container": container_config(run.workload, run.labels, JOB_RESTART_POLICY),
            "declared": run.workload.declared.as_json(),
        }

    def start_job(self, definition: dict[str, Any]) -> JobRun:
        labels = definition["container"]["Labels"]
        run = JobRun(labels[jobs.LABEL_JOB], labels[jobs.LABEL_JOB_RUN])
        with translated(f"starting run {run.run_id} of job {run.job_id}"):
            resources.ensure(self.api, definition.get("declared") or {}, labels, swarm=False)
            container_id = self._create(definition["name"], definition["container"])
            try:
                self.api.start(container_id)
            except docker.errors.APIError:
                # The container keeps why (State.Error): job_status reports the run failed.
                pass
        return run

    def _job_container(self, run: JobRun) -> dict[str, Any]:
        try:
            inspected: dict[str, Any] = self.api.inspect_container(
                jobs.resource_name(run.job_id, run.run_id)
            )
        except docker.errors.NotFound:
            raise StageFailed(
                f"the container of run {run.run_id} of job {run.job_id} was removed while it ran"
            ) from None
        return inspected

    def job_status(self, run: JobRun) -> JobStatus:
        with translated(f"reading run {run.run_id} of job {run.job_id}"):
            state = self._job_container(run)["State"]
        status, code, error = state["Status"], state["ExitCode"], state.get("Error")
        # A container that could not start stays "created", with why in Error.
        if status == "created" and error:
            return JobStatus(
                status, finished=True, exit_code=code, message=f"cannot start: {error}"
            )
        if status not in ("exited", "dead"):
            return JobStatus(status, finished=False)
        if state.get("OOMKilled"):
            message = "killed for using more memory than its limit (--mem, mem_limit)"
        elif code != 0 or error:
            message = error or "its container exited"
        else:
            return JobStatus(status, finished=True, succeeded=True, exit_code=code)
        return JobStatus(status, finished=True, exit_code=code, message=message)

    def job_log(self, run: JobRun, offset: int, stream: LogStream = "stdout") -> tuple[str, int]:
        with translated(f"reading the {stream} of run {run.run_id} of job {run.job_id}"):
            data: bytes = self.api.logs(
                jobs.resource_name(run.job_id, run.run_id),
                stdout=stream == "stdout",
                stderr=stream == "stderr",
            )
        return jobs.decoded_from(data, offset)

    def job_file(self, run: JobRun, path: str) -> bytes | None:
        with translated(f"copying {path} out of run {run.run_id} of job {run.job_id}"):
            return jobs.read_file(self.api, self._job_container(run)["Id"], path)

    def stop_job(self, run: JobRun) -> None:
        with translated(f"stopping run {run.run_id} of job {run.job_id}"):
            container = self._job_container(run)
            # Its own grace, passed on so that the SDK waits that long for the answer.
            self.api.stop(container["Id"], timeout=container["Config"].get("StopTimeout"))

    def finish_job(self, run: JobRun) -> None:
        with translated(f"removing run {run.run_id} of job {run.job_id}"):
            try:
                self.api.remove_container(jobs.resource_name(run.job_id, run.run_id), force=True)
            except docker.errors.NotFound:
                pass
