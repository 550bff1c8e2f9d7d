"""Running one stage, top to bottom: check where the result goes, load the context, open
the provider, run the stage, release the cluster leases, then write the result and exit
with its code. Every TreadleError becomes one line on stderr and an `error` in the
result; once the stage has changed anything, the exit code says so (never 2, 3 or 4).

A CI cancel (SIGTERM, SIGINT) cuts the stage's deadline to CANCEL_SECONDS: its pauses
end at once, a rollback gets what is left, and however the stage is stuck (a request to
a cluster that stopped answering) the result is written and the process exits within
STOP_SECONDS of the signal.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn, cast

import typer

from treadle.errors import Cancelled, InputError, TreadleError, Unexpected

if TYPE_CHECKING:
    from treadle.cli.options import Changes, Common, Lease
    from treadle.console import Console
    from treadle.context import Context
    from treadle.providers.base import Provider
    from treadle.stages.runtime import Runtime

Body = Callable[["Runtime", "Context"], dict[str, object]]

# After a cancel: what is left for requests and a rollback, and when the process ends
# whatever it is doing (CI systems kill a cancelled step's process some seconds later).
CANCEL_SECONDS = 2.0
STOP_SECONDS = 2.8
LOG_FORMATS = ("text", "json")
# How long a cancelled stage's trace may take to be sent, within what is left of 3 s.
OVERRUN_FLUSH = 0.15
# Result fields that the stage's span carries (as treadle.<field>).
TRACED_FIELDS = (
    "cluster",
    "region",
    "server_group",
    "image",
    "strategy",
    "previous_server_group",
    "job_id",
    "run_id",
    "job_status",
)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Outcome:
    """The result, written once: by the stage as it ends, or by the watchdog when a
    cancelled stage cannot end in time."""

    def __init__(self, stage: str, common: Common, console: Console) -> None:
        self.stage, self.common, self.console = stage, common, console
        self.started = now()
        self.provider = common.provider or ""
        self.rt: Runtime | None = None
        self._lock = threading.Lock()
        self._written = False
        # Destinations found unwritable before the stage began: told once, not tried again.
        self.unwritable: set[str] = set()

    def envelope(self, fields: dict[str, object], error: TreadleError | None) -> dict[str, Any]:
        from treadle.ci import provenance, provenance_fields

        rt = self.rt
        result: dict[str, Any] = {
            "stage": self.stage,
            "status": error.status if error else "succeeded",
            "provider": self.provider,
            "started_at": self.started,
            "finished_at": now(),
            **({"dry_run": True, "planned": rt.planned} if rt and rt.dry_run else {}),
            **fields,
        }
        if ran_from := provenance_fields(rt.provenance if rt else provenance()):
            result["provenance"] = ran_from  # the CI run that produced this result
        if error is not None:
            result["error"] = {"type": error.type, "message": str(error)}
        redacted: dict[str, Any] = self.console.redact_tree(result)
        return redacted

    def finish(self, fields: dict[str, object], error: TreadleError | None) -> int:
        """Write the result (once); the exit code."""
        from treadle.results import publish

        with self._lock:
            if self._written:
                return 1
            self._written = True
            code = error.exit_code if error else 0
            if error is not None:
                self.console.error(str(error), type=error.type, exit_code=code)
            try:
                publish(
                    self.envelope(fields, error),
                    output=None if "--output" in self.unwritable else self.common.output,
                    dotenv_file=None if "--dotenv" in self.unwritable else self.common.dotenv,
                    warn=self.console.warn,
                )
            except OSError as e:
                self.console.error(f"cannot write the result: {e}")
                # Checked before acting: if it fails now, the stage may have changed things.
                code = 1 if code == 0 and self.rt is not None and self.rt.changed else code or 2
            return code

    def overrun(self, signal: str) -> None:
        """The stage did not end within STOP_SECONDS of a cancel: write what it is known
        to have done and end the process."""
        rt = self.rt
        fields = dict(rt.progress.fields) if rt else {}
        error: TreadleError = Cancelled(
            f"cancelled ({signal}) and stopped before the stage could finish cleanly "
            f"(within {STOP_SECONDS:g}s of the signal)"
        )
        if rt is not None and rt.changed:
            error.after_change()
        code = self.finish(fields, error)
        from treadle import tracing

        # What is left of the time a cancelled step is given.
        tracing.end(self.traced(fields, error, code), failed=str(error), bound=OVERRUN_FLUSH)
        os._exit(code)

    def traced(
        self, fields: dict[str, object], error: TreadleError | None, code: int
    ) -> dict[str, object]:
        """The stage span's attributes: what it acted on and how it ended."""
        job_code = fields.get("exit_code") if self.stage == "run-job" else None
        return {
            "treadle.stage": self.stage,
            "treadle.provider": self.provider,
            "treadle.status": error.status if error else "succeeded",
            "treadle.exit_code": code,
            "treadle.dry_run": self.common.dry_run,
            **{f"treadle.{name}": fields.get(name) for name in TRACED_FIELDS},
            "treadle.job.exit_code": job_code,
            "error.type": error.type if error else None,
        }


def run_stage(
    stage: str,
    common: Common,
    body: Body,
    lease: Lease | None = None,
    changes: Changes | None = None,
    *,
    uses_provider: bool = True,
) -> NoReturn:
    """`uses_provider=False`: the stage acts on no cluster (verify), so no provider is
    chosen or connected to, and the result names none."""
    from treadle import tracing
    from treadle.ci import ci_attempt, ci_run_key, provenance
    from treadle.ci_log import log_format
    from treadle.console import Console
    from treadle.context import Context
    from treadle.providers.base import KEEP_RUNNING
    from treadle.providers.registry import choose, open_provider, settings_for
    from treadle.results import check_destination
    from treadle.stages.runtime import Runtime
    from treadle.waiting import Deadline, on_signal, shielded

    log_kind = (common.log_format or "text").strip().lower()
    console = Console(
        quiet=common.quiet,
        log=log_format(),
        verbose=common.verbose,
        json=log_kind == "json",
        stage=stage,
    )
    outcome = Outcome(stage, common, console)
    fields: dict[str, object] = {}
    error: TreadleError | None = None
    provider = None
    tracing.begin(stage, os.environ, console)
    try:
        if log_kind not in LOG_FORMATS:
            raise InputError(f"invalid --log-format {common.log_format!r}: use text or json")
        for path, flag in ((common.output, "--output"), (common.dotenv, "--dotenv")):
            if path:
                outcome.unwritable.add(flag)
                check_destination(path, flag)
                outcome.unwritable.discard(flag)
        context = Context.load(common.context)
        values = {
            name: context.text(value, f"--{name.replace('_', '-')}")
            for name, value in common.connection.items()
        }
        mask_options(values, console)
        deadline = Deadline(duration(context, common.timeout, "--timeout"))
        request_timeout = duration(context, common.request_timeout, "--request-timeout")
        lock_timeout = deadline.seconds
        gate = schedule(context, changes)
        if gate and gate["schedule"].jitter[1] >= deadline.seconds:
            raise InputError(
                f"--jitter {changes.jitter if changes else ''} may wait longer than --timeout "
                f"({deadline.seconds:g}s): make it shorter, or the timeout longer"
            )
        if uses_provider:
            outcome.provider = choose(context.text(common.provider, "--provider"), values)
            settings = settings_for(outcome.provider, values)
        run_key = None
        if lease is not None:
            if lease.lock_timeout:
                lock_timeout = duration(context, lease.lock_timeout, "--lock-timeout")
            run_key = check_run_key(context.text(lease.run_key, "--run-key") or ci_run_key())

        def cancelled(signal: str) -> None:
            deadline.cut(CANCEL_SECONDS)
            timer = threading.Timer(STOP_SECONDS, outcome.overrun, args=(signal,))
            timer.daemon = True
            timer.start()

        on_signal(cancelled)
        if uses_provider:
            provider = open_provider(
                outcome.provider,
                settings,
                deadline=deadline,
                console=console,
                request_timeout=request_timeout,
            )
            if gate.get("keep_running") and KEEP_RUNNING not in provider.capabilities:
                raise InputError(
                    f"--keep-running: the {outcome.provider} provider stops a disabled server "
                    "group's instances (it is for the docker provider)"
                )
        outcome.rt = Runtime.tracking(
            provider or cast("Provider", NoProvider()),
            console=console,
            deadline=deadline,
            wait=not common.no_wait,
            dry_run=common.dry_run,
            events=not common.no_events,
            lock_timeout=lock_timeout,
            run_key=run_key,
            attempt=ci_attempt(os.environ),
            provenance=provenance(os.environ),
            stage=stage,
            **gate,
        )
        fields = body(outcome.rt, context)
    except TreadleError as e:
        error, fields = e, e.fields
    except KeyboardInterrupt:
        error = Cancelled("cancelled")
    except Exception as e:  # noqa: BLE001 (a bug: still one line, a result, the exit code)
        error = Unexpected.of(e)
        console.debug_traceback(e)
    finally:
        rt = outcome.rt
        if rt is not None:
            with shielded():
                rt.exits.close()
        if provider is not None:
            provider.close()
    if error is not None and outcome.rt is not None and outcome.rt.changed:
        error.after_change()
    code = 1
    try:
        code = outcome.finish(fields, error)
    finally:
        tracing.end(outcome.traced(fields, error, code), failed=str(error) if error else None)
    raise typer.Exit(code)


class NoProvider:
    """The provider of a stage that acts on no cluster: using it is a bug."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AssertionError(f"this stage uses no provider (asked for {name})")


def duration(context: Context, value: Any, flag: str) -> float:
    from treadle.cli.values import duration as parse

    return parse(context.text(value, flag), flag)


def schedule(context: Context, changes: Changes | None) -> dict[str, Any]:
    """The Runtime's execution windows and traffic guard threshold, from the Changes
    options (a stage that changes nothing has none)."""
    if changes is None:
        return {}
    from treadle.cli.values import duration_range, number
    from treadle.stages.guard import check_ratio
    from treadle.stages.windows import Schedule

    def r(value: Any, flag: str) -> Any:
        return context.text(value, flag)

    jitter = r(changes.jitter, "--jitter")
    ratio = number(r(changes.min_capacity_ratio, "--min-capacity-ratio"), "--min-capacity-ratio")
    return {
        "schedule": Schedule.parse(
            [str(w) for w in r(changes.window or [], "--window")],
            r(changes.timezone, "--timezone"),
            r(changes.outside_window, "--outside-window"),
            duration_range(jitter, "--jitter") if jitter else (0.0, 0.0),
        ),
        "min_capacity_ratio": check_ratio(ratio),
        "drain": duration_or_zero(r(changes.drain, "--drain")),
        "keep_running": changes.keep_running,
    }


def duration_or_zero(value: Any) -> float:
    from treadle.cli.values import duration

    if value is None or value == "":
        return 2.0
    return 0.0 if str(value).strip() in ("0", "0s") else duration(value, "--drain")


def check_run_key(key: Any) -> str | None:
    if key is None or key == "":
        return None
    from treadle.ci import check_run_key as check

    return check(str(key))


def mask_options(values: dict[str, Any], console: Console) -> None:
    """Every secret among the providers' options, and the password of any URL, masked
    before anything is printed (a placeholder may have rendered them out of the context);
    HTTP basic auth also in the forms a server echoes it back in."""
    from treadle.providers.registry import all_options

    for name, option in all_options().items():
        value = values.get(name)
        if not value or not isinstance(value, str):
            continue
        if option.url:
            console.mask_url(value)
        elif option.secret:
            console.mask(value)
    if values.get("username") and values.get("password"):
        console.mask_basic(str(values["username"]), str(values["password"]))
