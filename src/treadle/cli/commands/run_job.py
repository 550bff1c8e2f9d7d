"""treadle run-job"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from treadle.cli.application import option
from treadle.cli.options import Common, stage_command
from treadle.cli.runner import run_stage
from treadle.cli.spec import load_spec
from treadle.cli.values import number, whole

if TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.runtime import Runtime


@stage_command("run-job", "common")
def run_job_command(
    spec: Annotated[
        str | None,
        option(
            "--spec",
            help="Job definition, JSON or YAML: a Metronome job, or a Docker/Swarm spec.",
        ),
    ] = None,
    service: Annotated[
        str | None,
        option("--service", help="With a Compose file as --spec: the service to run."),
    ] = None,
    job_id: Annotated[
        str | None, option("--job-id", help="The job's id, dotted names: ci.db-migrate.")
    ] = None,
    image: Annotated[str | None, option("--image", help="The image to run.")] = None,
    cmd: Annotated[str | None, option("--cmd", help="The command, run by a shell.")] = None,
    env: Annotated[
        list[str] | None,
        option("--env", help="KEY=VALUE for the job's environment; repeatable."),
    ] = None,
    cpus: Annotated[str | None, option("--cpus", help="CPUs for the job: 0.5.")] = None,
    mem: Annotated[str | None, option("--mem", help="Memory for the job, in MiB.")] = None,
    output_file: Annotated[
        str | None,
        option(
            "--output-file",
            help="A JSON object or Java properties file the job writes; its keys become outputs.",
        ),
    ] = None,
    *,
    common: Common,
) -> None:
    """Run a one-off job to completion and collect the outputs it writes."""
    from treadle.stages.run_job import Request, run_job

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        def r(value: Any, flag: str) -> Any:
            return context.text(value, flag)

        return run_job(
            rt,
            Request(
                job_id=r(job_id, "--job-id"),
                image=r(image, "--image"),
                command=r(cmd, "--cmd"),
                env=tuple(str(e) for e in r(env or [], "--env")),
                cpus=number(r(cpus, "--cpus"), "--cpus"),
                mem=whole(r(mem, "--mem"), "--mem"),
                spec=load_spec(
                    r(spec, "--spec"), context, r(service, "--service"), rt.console.warn
                ),
                output_file=r(output_file, "--output-file"),
            ),
        )

    run_stage("run-job", common, body)
