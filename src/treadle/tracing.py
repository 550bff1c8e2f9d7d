"""A stage's trace, exported with OpenTelemetry when the standard variables ask for one.

With OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, a stage
is one span, a child of the CI system's span when TRACEPARENT names one, with a span for
every request a provider sends and every wait; the OpenTelemetry SDK sends them over
OTLP/HTTP, configured by the other OTEL_* variables (headers, timeout, sampler, resource).

Off, which is the default, `span()` hands back one shared span that does nothing: no
OpenTelemetry module is imported and a span costs one call. Tracing never fails a stage:
a missing SDK is one warning and the stage runs untraced, and the trace is sent within
FLUSH_SECONDS of the stage's end or not at all (then one warning says why).

Every attribute is masked as the stage's log is (Console.redact): a secret never leaves
in a span.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treadle.console import Console

ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# How long the end of a stage may wait for its trace to be sent.
FLUSH_SECONDS = 1.0
# An attribute's text is cut here (an error message quoting a long answer).
MAX_TEXT = 1000

# An OTLP header is masked when its name says it holds a credential, or its value is
# this long (a key); `x-env=prod` is not, lest every `prod` in the log become `***`.
_CREDENTIAL = re.compile(r"auth|key|token|secret|pass|team|credential|signature", re.IGNORECASE)
LONG_HEADER = 16

Attributes = Mapping[str, object]


class Span:
    """A span that records nothing: what `span()` gives while tracing is off."""

    __slots__ = ()

    def __enter__(self) -> Span:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        return None

    def set(self, attributes: Attributes) -> None:
        """Add attributes (None values are left out)."""

    def fail(self, kind: str, description: str = "") -> None:
        """Mark it failed: `kind` is its error.type (an exception's name, an HTTP status)."""


NOOP = Span()
_tracing: _Tracing | None = None


def active() -> bool:
    return _tracing is not None


def span(
    name: str, attributes: Attributes | None = None, *, client: bool = False, current: bool = True
) -> Span:
    """A span under the one this thread is in (else under the stage's span): `client`
    for a request to a provider; `current=False` for one that has no children and may
    end in another thread than it began."""
    tracing = _tracing
    if tracing is None:
        return NOOP
    return _Live(tracing, name, attributes or {}, client, current)


def requested(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return any(environ.get(name) for name in ENDPOINTS)


def begin(stage: str, environ: Mapping[str, str], console: Console) -> None:
    """Start the stage's trace, when the environment asks for one: its span is open
    (and current in this thread) until `end`."""
    global _tracing
    if _tracing is not None:
        # An earlier stage in this process that never reached `end` (it crashed).
        end({}, bound=0)
    if not requested(environ):
        return
    for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = environ.get(variable, "").strip()
        if protocol not in ("", "http/protobuf"):
            console.warn(
                f"tracing is off: {variable}={protocol} asks for what treadle does not send; "
                "it sends OTLP over HTTP (http/protobuf)"
            )
            return
    for variable in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        # `name=value,...`: a backend's API key travels there (`x-honeycomb-team=KEY`).
        for pair in environ.get(variable, "").split(","):
            name, equals, value = pair.partition("=")
            if not equals:
                # Malformed (`Authorization: Bearer KEY`): the SDK quotes it back whole.
                console.mask(pair.strip())
                for part in re.split(r"[:\s]+", pair):
                    console.mask(part if len(part) >= LONG_HEADER else None)
                continue
            value = urllib.parse.unquote(value).strip()
            if _CREDENTIAL.search(name) or len(value) >= LONG_HEADER:
                console.mask(value)
    for name in ENDPOINTS:
        # An API key may travel in the endpoint's user info or query, which the SDK's
        # errors quote back.
        url = environ.get(name) or ""
        console.mask_url(url)
        query = urllib.parse.urlsplit(url).query
        console.mask(query)
        for name, value in urllib.parse.parse_qsl(query):
            if _CREDENTIAL.search(name) or len(value) >= LONG_HEADER:
                console.mask(value)
    variable = next(name for name in ENDPOINTS if environ.get(name))
    try:
        _tracing = _Tracing(stage, environ, console)
    except ImportError as e:
        console.warn(
            f"tracing is off: {variable} is set but the OpenTelemetry SDK is missing "
            f"({e.name or e}): pip install 'treadle[otel]'"
        )
    except Exception as e:  # noqa: BLE001 (a bad OTEL_* value must not fail the stage)
        console.warn(f"tracing is off: the OpenTelemetry SDK refused its settings ({e})")


def end(attributes: Attributes, *, failed: str | None = None, bound: float = FLUSH_SECONDS) -> None:
    """End the stage's span with `attributes` (its status an error when `failed` says
    why), and send the trace, waiting at most `bound` seconds."""
    global _tracing
    tracing, _tracing = _tracing, None
    if tracing is not None:
        tracing.end(attributes, failed, bound)


def clean(attributes: Attributes, redact: Any) -> dict[str, Any]:
    """Attributes OpenTelemetry takes: no None, text masked and cut, lists of text."""
    found: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, bool | int | float):
            found[key] = value
        elif isinstance(value, str):
            found[key] = redact(value)[:MAX_TEXT]
        elif isinstance(value, Sequence):
            found[key] = [redact(str(item))[:MAX_TEXT] for item in value]
        else:
            found[key] = redact(str(value))[:MAX_TEXT]
    return found


class _Problems(logging.Handler):
    """The SDK's own complaints (an export that failed), kept for one warning of ours
    instead of its log lines on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 (a malformed record must not break a stage)
            message = str(record.msg)
        if "export" in record.name or "export" in message.lower():
            # "Transient error X encountered while exporting spans batch, retrying in 2s":
            # X is the news; the retry will not happen once the stage has ended.
            self.last = message.split(" encountered while exporting")[0].removeprefix(
                "Transient error "
            )


class _Tracing:
    """The SDK, its exporter and the stage's span, for one stage."""

    def __init__(self, stage: str, environ: Mapping[str, str], console: Console) -> None:
        from opentelemetry import context, trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from treadle import __version__

        self.console = console
        given = urllib.parse.urlsplit(next(environ[n] for n in ENDPOINTS if environ.get(n)))
        # Quoted in a warning: without user info or query (where an API key may travel).
        host = given.netloc.rpartition("@")[2]
        self.endpoint = urllib.parse.urlunsplit((given.scheme, host, given.path, "", ""))
        self.problems = _Problems()
        sdk_log = logging.getLogger("opentelemetry")
        sdk_log.addHandler(self.problems)
        # Never on stderr, even from an export still trying when the stage has ended.
        if not any(type(h) is logging.NullHandler for h in sdk_log.handlers):
            sdk_log.addHandler(logging.NullHandler())
        sdk_log.propagate = False
        named = environ.get("OTEL_SERVICE_NAME") or "service.name=" in environ.get(
            "OTEL_RESOURCE_ATTRIBUTES", ""
        )
        resource = Resource.create(
            {"service.version": __version__, **({} if named else {"service.name": "treadle"})}
        )
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self.tracer = self.provider.get_tracer("treadle", __version__)
        carrier = {
            key.lower(): environ[key] for key in ("TRACEPARENT", "TRACESTATE") if environ.get(key)
        }
        parent = TraceContextTextMapPropagator().extract(carrier)
        self.stage = self.tracer.start_span(
            f"treadle {stage}", context=parent, attributes={"treadle.stage": stage}
        )
        # The parent of spans begun in threads that are in no span (concurrent regions,
        # event streams).
        self.root = trace.set_span_in_context(self.stage, parent)
        self.token = context.attach(self.root)
        self.thread = threading.current_thread()

    def redact(self, text: str) -> str:
        return self.console.redact(text)

    def end(self, attributes: Attributes, failed: str | None, bound: float) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        self.stage.set_attributes(clean(attributes, self.redact))
        if failed is not None:
            self.stage.set_status(Status(StatusCode.ERROR, self.redact(failed)[:MAX_TEXT]))
        self.stage.end()
        # A cancelled stage's watchdog ends it from a thread of its own.
        if threading.current_thread() is self.thread:
            context.detach(self.token)
        # The SDK's flush ignores its own timeout: it runs on a thread of its own, which a
        # collector that does not answer cannot hold past `bound`.
        sender = threading.Thread(
            target=self.provider.shutdown, name="treadle-trace-flush", daemon=True
        )
        sender.start()
        sender.join(bound)
        logging.getLogger("opentelemetry").removeHandler(self.problems)
        late = sender.is_alive()
        if late or self.problems.last:
            why = self.problems.last or "the collector did not answer in time"
            within = f" within {bound:g}s" if late else ""
            self.console.warn(f"the trace was not sent to {self.endpoint}{within}: {why}")


class _Live(Span):
    """A span the SDK records."""

    __slots__ = ("_attributes", "_client", "_current", "_name", "_span", "_token", "_tracing")

    def __init__(
        self, tracing: _Tracing, name: str, attributes: Attributes, client: bool, current: bool
    ) -> None:
        self._tracing = tracing
        self._name, self._attributes = name, attributes
        self._client, self._current = client, current
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> Span:
        from opentelemetry import context, trace

        tracing = self._tracing
        in_a_span = trace.get_current_span().get_span_context().is_valid
        self._span = tracing.tracer.start_span(
            tracing.redact(self._name),
            context=None if in_a_span else tracing.root,
            kind=trace.SpanKind.CLIENT if self._client else trace.SpanKind.INTERNAL,
            attributes=clean(self._attributes, tracing.redact),
        )
        if self._current:
            self._token = context.attach(trace.set_span_in_context(self._span))
        return self

    def set(self, attributes: Attributes) -> None:
        if self._span is not None:
            self._span.set_attributes(clean(attributes, self._tracing.redact))

    def fail(self, kind: str, description: str = "") -> None:
        from opentelemetry.trace import Status, StatusCode

        if self._span is not None:
            self._span.set_attribute("error.type", kind)
            self._span.set_status(
                Status(StatusCode.ERROR, self._tracing.redact(description)[:MAX_TEXT])
            )

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        from opentelemetry import context

        if isinstance(error, BaseException):
            self.fail(type(error).__name__, str(error))
        if self._token is not None:
            context.detach(self._token)
        self._span.end()
