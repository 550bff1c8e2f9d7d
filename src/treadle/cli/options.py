"""Options, each declared once: an option also reads TREADLE_<OPTION> from the
environment, and options shared by several stages come in groups (the connection, which
each provider declares in its own settings; context and results; the cluster lease; the
server group a stage acts on) that a stage names in `stage_command`."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Annotated, Any

from treadle.cli.application import GroupedCommand, app, flag, option
from treadle.providers.registry import all_options

CONNECTION = "Connection"
RESULTS = "Context and results"
LEASE = "Cluster lease"
TARGET = "Server group"


@dataclass
class Common:
    provider: str | None
    request_timeout: str
    no_events: bool
    context: list[str] | None
    output: str | None
    dotenv: str | None
    timeout: str
    no_wait: bool
    dry_run: bool
    quiet: bool
    verbose: bool
    log_format: str
    # Every provider's own options (treadle.providers.settings), by field name.
    connection: dict[str, Any]


COMMON: dict[str, tuple[Any, Any, Any]] = {
    "provider": (
        str | None,
        option(
            "--provider",
            help="marathon, docker or swarm (default: docker, or marathon when a DC/OS URL is given)",
            rich_help_panel=CONNECTION,
        ),
        None,
    ),
    "request_timeout": (
        str,
        option(
            "--request-timeout",
            help="One request taking longer is retried as a transient fault: 30s.",
            rich_help_panel=CONNECTION,
        ),
        "30s",
    ),
    "no_events": (
        bool,
        flag(
            "--no-events",
            help="While waiting, poll instead of following the cluster's event stream.",
            rich_help_panel=CONNECTION,
        ),
        False,
    ),
    "context": (
        list[str] | None,
        option(
            "--context",
            help="JSON/YAML merged into the context (FILE, or NAME=FILE to place it under NAME); repeatable.",
            rich_help_panel=RESULTS,
        ),
        None,
    ),
    "output": (
        str | None,
        option(
            "--output",
            "-o",
            help="Write the result JSON here instead of stdout.",
            rich_help_panel=RESULTS,
        ),
        None,
    ),
    "dotenv": (
        str | None,
        option(
            "--dotenv",
            help="Also write scalar result fields as TREADLE_<FIELD>=value lines.",
            rich_help_panel=RESULTS,
        ),
        None,
    ),
    "timeout": (
        str,
        option(
            "--timeout",
            help="Give up after this long: 600, 90s, 10m, 1h (bounds every request and wait).",
            rich_help_panel=RESULTS,
        ),
        "10m",
    ),
    "no_wait": (
        bool,
        flag(
            "--no-wait",
            help="Do not wait for the cluster to reach the asked state.",
            rich_help_panel=RESULTS,
        ),
        False,
    ),
    "dry_run": (
        bool,
        flag(
            "--dry-run", help="Print what would change and change nothing.", rich_help_panel=RESULTS
        ),
        False,
    ),
    "quiet": (
        bool,
        flag("--quiet", "-q", help="Only errors on stderr.", rich_help_panel=RESULTS),
        False,
    ),
    "verbose": (
        bool,
        flag(
            "--verbose",
            "-v",
            help="Also log every request and answer (secrets masked, bodies cut short).",
            rich_help_panel=RESULTS,
        ),
        False,
    ),
    "log_format": (
        str,
        option(
            "--log-format",
            help="text, or json: one JSON object per line on stderr, for log shippers.",
            rich_help_panel=RESULTS,
        ),
        "text",
    ),
}


def connection_options() -> dict[str, tuple[Any, Any, Any]]:
    """The providers' own options, each as its provider's settings declare it."""
    found: dict[str, tuple[Any, Any, Any]] = {}
    for name, spec in all_options().items():
        default_env = "TREADLE_" + spec.flag.lstrip("-").replace("-", "_").upper()
        envvar = [default_env, *spec.envvars] if spec.envvars else None
        if spec.is_flag:
            found[name] = (bool, flag(spec.flag, help=spec.help, rich_help_panel=CONNECTION), False)
        else:
            found[name] = (
                str | None,
                option(spec.flag, envvar=envvar, help=spec.help, rich_help_panel=CONNECTION),
                None,
            )
    return found


@dataclass
class Lease:
    lock_timeout: str | None
    run_key: str | None


LEASE_OPTIONS: dict[str, tuple[Any, Any, Any]] = {
    "lock_timeout": (
        str | None,
        option(
            "--lock-timeout",
            help="Wait this long for another run's cluster lease (default: --timeout).",
            rich_help_panel=LEASE,
        ),
        None,
    ),
    "run_key": (
        str | None,
        option(
            "--run-key",
            help="Names this run across CI retries: a rerun takes its own earlier attempt's "
            "lease over at once, and a deploy with the same key, image and spec carries on "
            "with the server group the first attempt created (default: from the CI system's "
            "run identifiers).",
            rich_help_panel=LEASE,
        ),
        None,
    ),
}


@dataclass
class Changes:
    window: list[str] | None
    timezone: str | None
    outside_window: str | None
    jitter: str | None
    min_capacity_ratio: str | None
    drain: str | None
    keep_running: bool


WINDOWS = "Execution windows and safeguards"
CHANGES_OPTIONS: dict[str, tuple[Any, Any, Any]] = {
    "window": (
        list[str] | None,
        option(
            "--window",
            help="When the stage may change the cluster: 'mon-fri 09:00-17:00', '22:00-02:00'; repeatable.",
            rich_help_panel=WINDOWS,
        ),
        None,
    ),
    "timezone": (
        str | None,
        option("--timezone", help="The windows' time zone (IANA): UTC.", rich_help_panel=WINDOWS),
        None,
    ),
    "outside_window": (
        str | None,
        option(
            "--outside-window",
            help="fail (exit 3, the next window's start in the result) or wait for it: fail.",
            rich_help_panel=WINDOWS,
        ),
        None,
    ),
    "jitter": (
        str | None,
        option(
            "--jitter",
            help="Start after a random delay in this range: 0s-60s.",
            rich_help_panel=WINDOWS,
        ),
        None,
    ),
    "min_capacity_ratio": (
        str | None,
        option(
            "--min-capacity-ratio",
            help="Traffic guard: refuse when the cluster would serve this share (0-0.5) of "
            "its instances or less (default: refuse only to leave it serving nothing).",
            rich_help_panel=WINDOWS,
        ),
        None,
    ),
    "drain": (
        str | None,
        option(
            "--drain",
            help="How long a server group that its load balancer has taken out of rotation "
            "(marathon-lb on Marathon) finishes what it serves before it stops: 2s.",
            rich_help_panel=WINDOWS,
        ),
        None,
    ),
    "keep_running": (
        bool,
        flag(
            "--keep-running",
            help="A disabled server group runs on outside its cluster's alias (started again "
            "outside it once it has finished what it served), so that enable and rollback "
            "bring it back at once (docker).",
            rich_help_panel=WINDOWS,
        ),
        False,
    ),
}


@dataclass
class Target:
    region: str | None
    server_group: str | None
    cluster: str | None
    target: str | None


TARGET_OPTIONS: dict[str, tuple[Any, Any, Any]] = {
    "region": (
        str | None,
        option(
            "--region",
            help="Marathon group path (default /), or a Docker/Swarm label (default local).",
            rich_help_panel=TARGET,
        ),
        None,
    ),
    "server_group": (
        str | None,
        option(
            "--server-group", help="The server group, e.g. web-prod-v003.", rich_help_panel=TARGET
        ),
        None,
    ),
    "cluster": (
        str | None,
        option("--cluster", help="Or a cluster, with --target.", rich_help_panel=TARGET),
        None,
    ),
    "target": (
        str | None,
        option(
            "--target",
            help="newest, previous, oldest or largest server group of --cluster.",
            rich_help_panel=TARGET,
        ),
        None,
    ),
}


def groups() -> dict[str, tuple[type, dict[str, tuple[Any, Any, Any]]]]:
    return {
        "common": (Common, {**COMMON, **connection_options()}),
        "lease": (Lease, LEASE_OPTIONS),
        "changes": (Changes, CHANGES_OPTIONS),
        "target": (Target, TARGET_OPTIONS),
    }


def stage_command(name: str, *names: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a stage whose function receives option groups as dataclasses: its own
    options stay in its signature, the shared ones are added here once."""
    declared = groups()

    def register(fn: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(fn, include_extras=True)
        own = [
            p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(fn).parameters.values()
            if p.name not in names
        ]
        shared = [
            inspect.Parameter(
                param, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[kind, opt], default=d
            )
            for group in names
            for param, (kind, opt, d) in declared[group][1].items()
        ]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> None:
            for group in names:
                cls, options = declared[group]
                values = {param: kwargs.pop(param) for param in options}
                if cls is Common:
                    plain = {f.name for f in fields(Common)} - {"connection"}
                    values = {
                        **{k: v for k, v in values.items() if k in plain},
                        "connection": {k: v for k, v in values.items() if k not in plain},
                    }
                kwargs[group] = cls(**values)
            fn(**kwargs)

        params = own + shared
        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        app.command(name, help=fn.__doc__, cls=GroupedCommand)(command)
        return fn

    return register
