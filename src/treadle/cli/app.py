"""The `treadle` command: one subcommand per stage.

This layer only turns options into stage inputs and a stage's outcome into a result and
an exit code. Options shared by several stages (connection, context, results, the server
group selector) are declared once, in option groups, and every option also reads
`TREADLE_<OPTION>` from the environment.
"""

from __future__ import annotations

import functools
import inspect
import os
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

try:  # typer vendors click from 0.20 on
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer
    from click import exceptions as click_errors  # type: ignore[no-redef]

from treadle import __version__
from treadle.errors import Cancelled, InputError, TreadleError

if typing.TYPE_CHECKING:
    from treadle.context import Context
    from treadle.stages.common import Runtime, Selector

app = typer.Typer(
    name="treadle",
    help="Spinnaker-style deployment stages as plain CI steps. Each stage writes a JSON "
    "result (stdout, or --output FILE); logs go to stderr.\n\nExit codes: 0 succeeded, "
    "1 failed, 2 bad input, 3 refused by a safeguard, 4 provider unreachable or "
    "credentials refused.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def option(*names: str, envvar: str | list[str] | None = None, **kwargs: Any) -> Any:
    """An option that also reads TREADLE_<NAME> from the environment."""
    default_env = "TREADLE_" + names[0].lstrip("-").replace("-", "_").upper()
    kwargs.setdefault("metavar", names[0].rsplit("-", 1)[-1].upper())
    return typer.Option(*names, envvar=envvar or default_env, show_envvar=False, **kwargs)


def flag(*names: str, **kwargs: Any) -> Any:
    """A boolean option: no value, so no metavar in the help."""
    return option(*names, metavar="", **kwargs)


CONNECTION = "Connection"
RESULTS = "Context and results"


@dataclass
class Common:
    provider: str | None
    marathon_url: str | None
    metronome_url: str | None
    dcos_url: str | None
    token: str | None
    username: str | None
    password: str | None
    service_account_uid: str | None
    service_account_key: str | None
    ca_cert: str | None
    insecure: bool
    request_timeout: str
    no_events: bool
    context: list[str] | None
    output: str | None
    dotenv: str | None
    timeout: str
    no_wait: bool
    dry_run: bool
    quiet: bool


COMMON_OPTIONS: dict[str, tuple[Any, Any]] = {
    "provider": (
        str | None,
        option(
            "--provider",
            help="marathon, docker or swarm (default: docker, or marathon when a DC/OS URL is given)",
            rich_help_panel=CONNECTION,
        ),
    ),
    "marathon_url": (
        str | None,
        option("--marathon-url", help="Marathon base URL.", rich_help_panel=CONNECTION),
    ),
    "metronome_url": (
        str | None,
        option("--metronome-url", help="Metronome base URL.", rich_help_panel=CONNECTION),
    ),
    "dcos_url": (
        str | None,
        option(
            "--dcos-url",
            help="DC/OS URL: Marathon at /service/marathon, login at /acs/api/v1/auth/login.",
            rich_help_panel=CONNECTION,
        ),
    ),
    "token": (
        str | None,
        option(
            "--token",
            envvar=["TREADLE_TOKEN", "DCOS_ACS_TOKEN"],
            help="DC/OS ACS token (also DCOS_ACS_TOKEN).",
            rich_help_panel=CONNECTION,
        ),
    ),
    "username": (
        str | None,
        option("--username", help="HTTP basic auth user.", rich_help_panel=CONNECTION),
    ),
    "password": (
        str | None,
        option("--password", help="HTTP basic auth password.", rich_help_panel=CONNECTION),
    ),
    "service_account_uid": (
        str | None,
        option(
            "--service-account-uid", help="DC/OS service account id.", rich_help_panel=CONNECTION
        ),
    ),
    "service_account_key": (
        str | None,
        option(
            "--service-account-key",
            help="Its RS256 private key (PEM file).",
            rich_help_panel=CONNECTION,
        ),
    ),
    "ca_cert": (
        str | None,
        option(
            "--ca-cert",
            help="CA bundle (PEM) that signed the cluster's certificate.",
            rich_help_panel=CONNECTION,
        ),
    ),
    "insecure": (
        bool,
        flag("--insecure", help="Do not verify TLS certificates.", rich_help_panel=CONNECTION),
    ),
    "request_timeout": (
        str,
        option(
            "--request-timeout",
            help="One request taking longer is retried as a transient fault: 30s.",
            rich_help_panel=CONNECTION,
        ),
    ),
    "no_events": (
        bool,
        flag(
            "--no-events",
            help="While waiting, poll instead of following the cluster's event stream.",
            rich_help_panel=CONNECTION,
        ),
    ),
    "context": (
        list[str] | None,
        option(
            "--context",
            help="JSON/YAML merged into the context (FILE, or NAME=FILE to place it under NAME); repeatable.",
            rich_help_panel=RESULTS,
        ),
    ),
    "output": (
        str | None,
        option(
            "--output",
            "-o",
            help="Write the result JSON here instead of stdout.",
            rich_help_panel=RESULTS,
        ),
    ),
    "dotenv": (
        str | None,
        option(
            "--dotenv",
            help="Also write scalar result fields as TREADLE_<FIELD>=value lines.",
            rich_help_panel=RESULTS,
        ),
    ),
    "timeout": (
        str,
        option(
            "--timeout", help="Give up after this long: 600, 90s, 10m, 1h.", rich_help_panel=RESULTS
        ),
    ),
    "no_wait": (
        bool,
        flag(
            "--no-wait",
            help="Do not wait for the cluster to reach the asked state.",
            rich_help_panel=RESULTS,
        ),
    ),
    "dry_run": (
        bool,
        flag(
            "--dry-run", help="Print what would change and change nothing.", rich_help_panel=RESULTS
        ),
    ),
    "quiet": (bool, flag("--quiet", "-q", help="Only errors on stderr.", rich_help_panel=RESULTS)),
}
COMMON_DEFAULTS = {
    "insecure": False,
    "request_timeout": "30s",
    "no_events": False,
    "timeout": "10m",
    "no_wait": False,
    "dry_run": False,
    "quiet": False,
}


@dataclass
class Target:
    region: str | None
    server_group: str | None
    cluster: str | None
    target: str | None


TARGET = "Server group"
TARGET_OPTIONS: dict[str, tuple[Any, Any]] = {
    "region": (
        str | None,
        option(
            "--region",
            help="Marathon group path (default /), or a Docker/Swarm label (default local).",
            rich_help_panel=TARGET,
        ),
    ),
    "server_group": (
        str | None,
        option(
            "--server-group", help="The server group, e.g. web-prod-v003.", rich_help_panel=TARGET
        ),
    ),
    "cluster": (
        str | None,
        option("--cluster", help="Or a cluster, with --target.", rich_help_panel=TARGET),
    ),
    "target": (
        str | None,
        option(
            "--target",
            help="newest, previous, oldest or largest server group of --cluster.",
            rich_help_panel=TARGET,
        ),
    ),
}

GROUPS: dict[str, tuple[type, dict[str, tuple[Any, Any]], dict[str, Any]]] = {
    "common": (Common, COMMON_OPTIONS, COMMON_DEFAULTS),
    "target": (Target, TARGET_OPTIONS, {}),
}


def stage_command(name: str, *groups: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a stage whose function receives option groups as dataclasses: its own
    options stay in its signature, the shared ones are added here once."""

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(fn).parameters.values()
            if p.name not in groups
        ]
        shared = [
            inspect.Parameter(
                param,
                inspect.Parameter.KEYWORD_ONLY,
                annotation=Annotated[kind, opt],
                default=GROUPS[group][2].get(param),
            )
            for group in groups
            for param, (kind, opt) in GROUPS[group][1].items()
        ]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> None:
            for group in groups:
                cls = GROUPS[group][0]
                kwargs[group] = cls(**{f.name: kwargs.pop(f.name) for f in fields(cls)})
            fn(**kwargs)

        params = own + shared
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name, help=fn.__doc__)(command)
        return fn

    return register


def version_callback(value: bool) -> None:
    if value:
        typer.echo(f"treadle {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    pass


# --- running a stage -----------------------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str, flag: str) -> float:
    m = _DURATION.fullmatch(str(text).strip())
    if not m or not any(m.groups()):
        raise InputError(
            f"invalid {flag} {text!r}: expected seconds or a duration like 90s, 10m, 1h"
        )
    h, mins, s = (float(g) if g else 0.0 for g in m.groups())
    seconds = h * 3600 + mins * 60 + s
    if seconds <= 0:
        raise InputError(f"invalid {flag} {text!r}: must be more than 0")
    return seconds


def as_int(value: Any, flag: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InputError(f"invalid {flag} {value!r}: expected a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise InputError(f"invalid {flag} {value!r}: expected a whole number") from None


def as_float(value: Any, flag: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(str(value).strip())
    except ValueError:
        raise InputError(f"invalid {flag} {value!r}: expected a number") from None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def execute(
    stage: str, common: Common, body: Callable[[Runtime, Context], dict[str, object]]
) -> None:
    """Run one stage: context, provider, body; then write the result and exit with its
    code. Every TreadleError becomes one line on stderr and an `error` in the result."""
    from treadle.ci import log_format
    from treadle.console import Console
    from treadle.context import Context
    from treadle.providers import Connection, choose, open_provider
    from treadle.results import publish
    from treadle.stages.common import Runtime
    from treadle.waiting import Deadline

    console = Console(quiet=common.quiet, log=log_format())
    started = now()
    provider_name = common.provider or ""
    fields_: dict[str, object] = {}
    error: TreadleError | None = None
    provider = None
    rt = None
    try:
        for secret in (common.token, common.password):
            console.mask(secret)
        context = Context.load(common.context)
        connection = Connection(
            **{
                f.name: context.render(getattr(common, f.name), f"--{f.name.replace('_', '-')}")
                for f in fields(Connection)
                if f.name not in ("insecure", "request_timeout")
            },
            insecure=common.insecure,
            request_timeout=parse_duration(
                context.render(common.request_timeout, "--request-timeout"), "--request-timeout"
            ),
        )
        # A secret may come out of the context: mask what the placeholders rendered too.
        for secret in connection.secrets():
            console.mask(secret)
        provider_name = choose(context.render(common.provider, "--provider"), connection)
        deadline = Deadline(
            parse_duration(context.render(common.timeout, "--timeout"), "--timeout")
        )
        provider = open_provider(provider_name, connection, deadline=deadline, console=console)
        rt = Runtime(
            provider,
            console,
            deadline,
            wait=not common.no_wait,
            dry_run=common.dry_run,
            events=not common.no_events,
        )
        fields_ = body(rt, context)
    except TreadleError as e:
        error, fields_ = e, e.fields
    except KeyboardInterrupt:
        error = Cancelled("cancelled")
    finally:
        if provider is not None:
            provider.close()
    result: dict[str, object] = {
        "stage": stage,
        "status": error.status if error else "succeeded",
        "provider": provider_name,
        "started_at": started,
        "finished_at": now(),
        **({"dry_run": True, "planned": rt.planned} if rt and rt.dry_run else {}),
        **fields_,
    }
    if error is not None:
        result["error"] = {"type": error.type, "message": console.redact(str(error))}
        console.error(str(error))
    try:
        publish(result, output=common.output, dotenv_file=common.dotenv, warn=console.warn)
    except OSError as e:
        console.error(f"cannot write the result: {e}")
        raise typer.Exit(2 if error is None else error.exit_code) from None
    raise typer.Exit(error.exit_code if error else 0)


def load_spec(path: str | None, context: Context) -> dict[str, Any] | None:
    if not path:
        return None
    from treadle.context import load_document

    spec = load_document(path, "spec file")
    if not isinstance(spec, dict):
        raise InputError(
            f"spec file {path}: expected an object at the top, found {type(spec).__name__}"
        )
    rendered: dict[str, Any] = context.render(spec, f"spec file {path}")
    return rendered


def selector(target: Target, context: Context) -> Selector:
    from treadle.stages.common import Selector

    values = {
        f.name: context.render(getattr(target, f.name), f"--{f.name.replace('_', '-')}")
        for f in fields(Target)
    }
    return Selector(region=values.pop("region") or "", **values)


# --- the stages ----------------------------------------------------------------------------


@stage_command("find-image", "common")
def find_image(
    cluster: Annotated[str, option("--cluster", help="The cluster, e.g. web-prod.")],
    region: Annotated[
        list[str] | None, option("--region", help="Region to look in; repeatable.")
    ] = None,
    selection: Annotated[
        str,
        option("--selection", help="newest, oldest, largest, or fail when more than one matches."),
    ] = "newest",
    include_disabled: Annotated[
        bool, flag("--include-disabled", help="Consider disabled server groups too.")
    ] = False,
    image_pattern: Annotated[
        str | None,
        option("--image-pattern", help="Only images matching this regular expression."),
    ] = None,
    *,
    common: Common,
) -> None:
    """Find the image a cluster's server group runs."""
    from treadle.stages import find_image as stage

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        return stage.run(
            rt,
            stage.Query(
                cluster=context.render(cluster, "--cluster"),
                regions=tuple(context.render(region or [], "--region")),
                selection=context.render(selection, "--selection"),
                include_disabled=include_disabled,
                image_pattern=context.render(image_pattern, "--image-pattern"),
            ),
        )

    execute("find-image", common, body)


@stage_command("deploy", "common")
def deploy(
    image: Annotated[str, option("--image", help="The image to deploy, e.g. registry/web:1.4.2.")],
    app_: Annotated[
        str | None, option("--app", help="Application: the first part of the cluster name.")
    ] = None,
    stack: Annotated[str | None, option("--stack", help="Stack, e.g. prod.")] = None,
    detail: Annotated[str | None, option("--detail", help="Detail, e.g. canary.")] = None,
    cluster: Annotated[
        str | None, option("--cluster", help="Or the whole cluster name, e.g. web-prod-canary.")
    ] = None,
    region: Annotated[
        list[str] | None,
        option("--region", help="Region; repeat it to deploy to several at once."),
    ] = None,
    spec: Annotated[
        str | None,
        option(
            "--spec",
            help="Provider spec file, JSON or YAML: a Marathon app definition, or a Docker/Swarm service spec.",
        ),
    ] = None,
    instances: Annotated[
        str | None,
        option("--instances", help="Size (default: the newest enabled server group's, else 1)."),
    ] = None,
    strategy: Annotated[
        str, option("--strategy", help="none, highlander, red-black or rolling-red-black.")
    ] = "none",
    max_remaining: Annotated[
        str | None,
        option("--max-remaining", help="red-black: keep at most N older server groups."),
    ] = None,
    steps: Annotated[
        str | None, option("--steps", help="rolling-red-black: percentages, e.g. 25,50,100.")
    ] = None,
    rollback_on_failure: Annotated[
        bool,
        flag(
            "--rollback-on-failure",
            help="When the new server group fails, take it out and restore what the strategy touched.",
        ),
    ] = False,
    destroy_failed: Annotated[
        bool,
        flag(
            "--destroy-failed",
            help="With --rollback-on-failure: destroy the failed server group instead of disabling it.",
        ),
    ] = False,
    run_key: Annotated[
        str | None,
        option(
            "--run-key",
            help="Names this deploy across CI retries: a rerun with the same key and image "
            "carries on with the server group the first attempt created (default: from the "
            "CI system's run identifiers).",
        ),
    ] = None,
    *,
    common: Common,
) -> None:
    """Create the next server group of a cluster, wait until healthy, apply a strategy."""
    from treadle import naming
    from treadle.ci import ci_run_key
    from treadle.stages import deploy as stage

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        def r(value: Any, flag: str) -> Any:
            return context.render(value, flag)

        named = r(cluster, "--cluster")
        if named and (app_ or stack or detail):
            raise InputError("give --cluster or --app/--stack/--detail, not both")
        if named:
            target = naming.parse_cluster(named)
        elif app_:
            target = naming.cluster(r(app_, "--app"), r(stack, "--stack"), r(detail, "--detail"))
        else:
            raise InputError("name the cluster: --app (with --stack, --detail) or --cluster")
        step_text = r(steps, "--steps")
        return stage.run(
            rt,
            stage.Request(
                cluster=target,
                image=str(r(image, "--image")),
                regions=tuple(r(region or [], "--region")),
                instances=as_int(r(instances, "--instances"), "--instances"),
                spec=load_spec(r(spec, "--spec"), context),
                strategy=r(strategy, "--strategy"),
                max_remaining=as_int(r(max_remaining, "--max-remaining"), "--max-remaining"),
                steps=parse_steps(step_text) if step_text else stage.DEFAULT_STEPS,
                rollback_on_failure=rollback_on_failure,
                run_key=r(run_key, "--run-key") or ci_run_key(),
                destroy_failed=destroy_failed,
            ),
        )

    execute("deploy", common, body)


def parse_steps(text: Any) -> tuple[int, ...]:
    parts = text if isinstance(text, list) else str(text).split(",")
    return tuple(as_int(p, "--steps") or 0 for p in parts)


@stage_command("resize", "common", "target")
def resize(
    instances: Annotated[str | None, option("--instances", help="Set the size to N.")] = None,
    scale_up: Annotated[str | None, option("--scale-up", help="Add N instances.")] = None,
    scale_down: Annotated[str | None, option("--scale-down", help="Remove N instances.")] = None,
    scale_pct: Annotated[
        str | None,
        option(
            "--scale-pct",
            help="Change the size by P percent (50 grows by half, -25 shrinks by a quarter).",
        ),
    ] = None,
    force: Annotated[
        bool, flag("--force", help="Resize to 0 even the last enabled server group.")
    ] = False,
    *,
    common: Common,
    target: Target,
) -> None:
    """Set a server group's size and wait until it is reached and healthy."""
    from treadle.stages import resize as stage

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        size = stage.Size(
            instances=as_int(context.render(instances, "--instances"), "--instances"),
            scale_up=as_int(context.render(scale_up, "--scale-up"), "--scale-up"),
            scale_down=as_int(context.render(scale_down, "--scale-down"), "--scale-down"),
            scale_pct=as_float(context.render(scale_pct, "--scale-pct"), "--scale-pct"),
        )
        return stage.run(rt, selector(target, context), size, force=force)

    execute("resize", common, body)


@stage_command("destroy", "common", "target")
def destroy(
    force: Annotated[
        bool, flag("--force", help="Destroy even the last enabled server group of a cluster.")
    ] = False,
    *,
    common: Common,
    target: Target,
) -> None:
    """Remove a server group (refused for the last enabled one unless --force)."""
    from treadle.stages import destroy as stage

    execute(
        "destroy", common, lambda rt, context: stage.run(rt, selector(target, context), force=force)
    )


@stage_command("disable", "common", "target")
def disable(
    force: Annotated[
        bool, flag("--force", help="Disable even the last enabled server group of a cluster.")
    ] = False,
    *,
    common: Common,
    target: Target,
) -> None:
    """Take a server group out of service, keeping its definition and size."""
    from treadle.stages import enable_disable as stage

    execute(
        "disable",
        common,
        lambda rt, context: stage.disable(rt, selector(target, context), force=force),
    )


@stage_command("enable", "common", "target")
def enable(*, common: Common, target: Target) -> None:
    """Bring a disabled server group back to the size it had."""
    from treadle.stages import enable_disable as stage

    execute("enable", common, lambda rt, context: stage.enable(rt, selector(target, context)))


@stage_command("run-job", "common")
def run_job(
    spec: Annotated[
        str | None,
        option(
            "--spec",
            help="Job definition, JSON or YAML: a Metronome job, or a Docker/Swarm spec.",
        ),
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
    from treadle.stages import run_job as stage

    def body(rt: Runtime, context: Context) -> dict[str, object]:
        def r(value: Any, flag: str) -> Any:
            return context.render(value, flag)

        return stage.run(
            rt,
            stage.Request(
                job_id=r(job_id, "--job-id"),
                image=r(image, "--image"),
                command=r(cmd, "--cmd"),
                env=tuple(str(e) for e in r(env or [], "--env")),
                cpus=as_float(r(cpus, "--cpus"), "--cpus"),
                mem=as_int(r(mem, "--mem"), "--mem"),
                spec=load_spec(r(spec, "--spec"), context),
                output_file=r(output_file, "--output-file"),
            ),
        )

    execute("run-job", common, body)


def main() -> None:
    """The console script: usage errors as one line, exit codes as documented."""
    from treadle.ci import forget_result_variables, log_format
    from treadle.console import Console
    from treadle.waiting import cancel_on_signals

    forget_result_variables(os.environ)
    try:
        with cancel_on_signals():
            code = app(standalone_mode=False, prog_name="treadle")
    except click_errors.UsageError as e:
        command = e.ctx.command_path if e.ctx else "treadle"
        Console(log=log_format()).error(f"{command}: {e.format_message()} (see {command} --help)")
        sys.exit(2)
    except click_errors.ClickException as e:
        Console(log=log_format()).error(f"treadle: {e.format_message()}")
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("treadle: cancelled\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
