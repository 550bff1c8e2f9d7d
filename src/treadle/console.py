"""All of treadle's terminal output goes through one Console: logs and progress to stderr,
so that stdout carries nothing but the result JSON. How a line is marked up for the CI
system it runs in (masks, folded sections, error annotations) is the log format's
business (treadle.ci), never the caller's, and so is making inert whatever text a line
quotes from elsewhere.

Secrets are masked in every form a server could echo them back in: as given, URL-encoded,
JSON-escaped, HTML-escaped, in base64, and for an HTTP basic credential `user:password`
in base64 (`Basic ...`).
A URL's password is never printed, registered or not (`redact_url`).

Two ways to print (--log-format): `text`, lines for people and the CI system's markup;
`json`, one JSON object per line (time, level, stage, message, fields) for log shippers.
In json mode the CI markup that only decorates is left out (sections become a `section`
field, annotations a `level`), but a GitHub mask is still its own `::add-mask::` line:
the runner hides a secret only when told so. With --verbose every HTTP exchange is
logged too (`http_request`, `http_response`), its body cut at VERBOSE_BODY characters and
the values of its secrets and environments masked (treadle.bodies)."""

from __future__ import annotations

import base64
import contextlib
import html
import itertools
import json
import re
import sys
import threading
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from treadle.bodies import MASK, shown_body
from treadle.ci_log import PlainLog

# Shorter values are not masked: none is a credential, and hiding every `abc` would both
# shred the log and show the value to anyone who looks at where `***` appears.
MIN_SECRET_LENGTH = 4
# How a job's two streams are told apart in the log.
STREAM_MARKS = {"stdout": "| ", "stderr": "! "}


@dataclass
class _Shared:
    """What a console and its children share: one stream's lock, the secrets, and the one
    section that may be open at a time (CI logs cannot nest them, and concurrent regions
    must not interleave them)."""

    log: PlainLog
    lock: threading.Lock = field(default_factory=threading.Lock)
    # What the log format was told to mask, and every form of it, longest first.
    told: set[str] = field(default_factory=set)
    secrets: list[str] = field(default_factory=list)
    section: str | None = None
    keys: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    verbose: bool = False
    json: bool = False
    stage: str = ""
    # The open section's title, a field of every JSON line inside it.
    section_title: str | None = None


class Console:
    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        log: PlainLog | None = None,
        verbose: bool = False,
        json: bool = False,
        stage: str = "",
    ) -> None:
        self._stream = stream
        self.quiet = quiet
        self.prefix = ""
        # What a JSON line's `fields` always hold (a concurrent region's name).
        self.fields: dict[str, object] = {}
        self._shared = _Shared(log or PlainLog(), verbose=verbose, json=json, stage=stage)

    def child(self, prefix: str, **fields: object) -> Console:
        """A console sharing this one's stream, lock, masks and section, with a line
        prefix (in json mode: `fields` on every line instead)."""
        child = Console.__new__(Console)
        child.__dict__.update(self.__dict__)
        child.prefix = self.prefix + prefix
        child.fields = {**self.fields, **fields}
        return child

    @property
    def verbose(self) -> bool:
        return self._shared.verbose

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stderr

    def mask(self, secret: str | None) -> None:
        """Never print this value (a token, a password), whatever message carries it, nor
        its URL-encoded or JSON-escaped forms; a CI system that hides secrets in its log is
        told at once, before any line could (GitHub derives those forms itself)."""
        if not secret or len(secret) < MIN_SECRET_LENGTH:
            return
        shared = self._shared
        with shared.lock:
            if secret in shared.told:
                return
            shared.told.add(secret)
            new = [form for form in encoded_forms(secret) if form not in shared.secrets]
            shared.secrets = sorted([*shared.secrets, *new], key=len, reverse=True)
        for line in shared.log.mask(secret):
            self._emit(line)

    def mask_basic(self, user: str, password: str | None) -> None:
        """An HTTP basic credential: the password, `user:password`, and the base64 of it
        that an `Authorization: Basic ...` header carries and an error body may echo."""
        if not password:
            return
        self.mask(password)
        pair = f"{user}:{password}"
        self.mask(pair)
        token = base64.b64encode(pair.encode()).decode()
        self.mask(token)
        self.mask(f"Basic {token}")

    def mask_url(self, url: str | None) -> None:
        """The credential a URL carries in its user info (`https://user:pass@host`), as it
        is written there (percent-encoded) and as it is sent (decoded, in basic auth),
        whatever characters it holds (a URL given is read up to its last `@` too, as a
        person may have typed a password with `'`, `/` or `#` unencoded)."""
        for info in user_infos(url or ""):
            user, colon, password = info.partition(":")
            if colon:
                self.mask(password)
                self.mask(f"{user}:{password}")
                self.mask_basic(urllib.parse.unquote(user), urllib.parse.unquote(password))
            else:
                # A user and no password: the user is the credential (`https://TOKEN@host`).
                self.mask(user)
                self.mask(urllib.parse.unquote(user))

    def redact(self, text: str) -> str:
        """`text` with every registered secret, longest first, and every URL's password
        as `***`."""
        for secret in self._shared.secrets:
            text = text.replace(secret, MASK)
        return redact_url(text)

    def redact_tree(self, value: Any) -> Any:
        """A copy of a result tree with every string redacted, keys too (a job's output
        may be named after a secret). Keys equal once redacted: the last one stays."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {self.redact_tree(k): self.redact_tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_tree(item) for item in value]
        return value

    def _emit(self, line: str) -> None:
        with self._shared.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _line(self, message: str) -> str:
        return self.redact(self.prefix + message)

    def _record(self, level: str, message: str, fields: Mapping[str, object]) -> str:
        """One JSON log line, masked. `##[` is written `#\\u0023[`, the same JSON, so that
        GitHub's runner reads no command in it (nothing else can start one: the line
        starts with `{` and JSON escapes every control character)."""
        shared = self._shared
        section = {"section": shared.section_title} if shared.section_title else {}
        record = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": level,
            "stage": shared.stage,
            "message": self.redact(message),
            "fields": self.redact_tree({**section, **self.fields, **fields}),
        }
        return json.dumps(record).replace("##[", "#\\u0023[")

    def info(self, message: str, **fields: object) -> None:
        if self.quiet:
            return
        if self._shared.json:
            self._emit(self._record("info", message, fields))
        else:
            self._emit(self._shared.log.line(self._line(message)))

    def untrusted(self, lines: list[str], *, stream: str | None = None) -> None:
        """Lines someone else wrote (a job's log; `stream` says which of its streams, marked
        as STREAM_MARKS says), redacted and made inert by the log format, printed
        together: nothing of ours may fall between (on GitHub they sit in a stretch where
        the runner obeys no command, a mask included)."""
        if self.quiet or not lines:
            return
        if self._shared.json:
            fields = {"stream": stream} if stream else {}
            text = "".join(f"{self._record('info', line, fields)}\n" for line in lines)
        else:
            mark = STREAM_MARKS.get(stream or "", "")
            marked = self._shared.log.untrusted([self._line(mark + line) for line in lines])
            text = "".join(f"{line}\n" for line in marked)
        with self._shared.lock:
            self.stream.write(text)
            self.stream.flush()

    def warn(self, message: str, **fields: object) -> None:
        if self._shared.json:
            self._emit(self._record("warning", message, fields))
        else:
            self._emit(self._shared.log.warning(self._line(message)))

    def debug_traceback(self, error: BaseException) -> None:
        """With --verbose: where a bug happened (its traceback, redacted)."""
        if not self._shared.verbose:
            return
        import traceback

        for line in "".join(traceback.format_exception(error)).splitlines():
            self.info(line)

    def error(self, message: str, **fields: object) -> None:
        if self._shared.json:
            self._emit(self._record("error", message, fields))
        else:
            self._emit(self._shared.log.error(self._line(message)))

    def raw(self, text: str) -> None:
        """A document the user asked for (a dry-run plan), printed as it is but redacted and
        made inert (a spec's string could hold `##[...]`)."""
        if self._shared.json:
            self._emit(self._record("info", text.rstrip("\n"), {}))
            return
        with self._shared.lock:
            self.stream.write(self._shared.log.line(self.redact(text)))
            self.stream.flush()

    def http_request(self, method: str, url: str, body: bytes | str | None = None) -> None:
        """With --verbose: a request about to be sent (`> GET URL body`)."""
        if not self._shared.verbose:
            return
        shown = shown_body(body, redact=self.redact)
        if self._shared.json:
            fields = {"http": "request", "method": method, "url": url, "body": shown or None}
            self._emit(self._record("debug", f"{method} {url}", fields))
        else:
            self._emit(self._shared.log.line(self._line(f"> {method} {url} {shown}".rstrip())))

    def http_response(
        self,
        method: str,
        url: str,
        status: int | None,
        seconds: float,
        body: bytes | str | None = None,
        *,
        content_type: str = "",
        note: str = "",
    ) -> None:
        """With --verbose: its answer (`< 200 GET URL (12 ms) body`), or why none came
        (`status` None, `note` the error); `note` also stands for a body not shown."""
        if not self._shared.verbose:
            return
        shown = note or shown_body(body, content_type, self.redact)
        took = f"{seconds * 1000:.0f} ms"
        if self._shared.json:
            fields = {
                "http": "response",
                "method": method,
                "url": url,
                "status": status,
                "seconds": round(seconds, 4),
                "body": shown or None,
            }
            self._emit(self._record("debug", f"{method} {url} -> {status or 'no answer'}", fields))
        else:
            line = f"< {status or 'no answer'} {method} {url} ({took}) {shown}".rstrip()
            self._emit(self._shared.log.line(self._line(line)))

    @contextlib.contextmanager
    def section(self, title: str) -> Iterator[None]:
        """Fold the lines logged inside (a long wait) under `title` where the CI log can
        (in json mode: `section` is a field of each). Inside an open section, or when
        quiet, it adds nothing."""
        shared = self._shared
        with shared.lock:
            key = None if self.quiet or shared.section else f"treadle_{next(shared.keys)}"
            shared.section = shared.section or key
        if key is None:
            yield
            return
        if shared.json:
            shared.section_title = self.redact(self.prefix + title)
            try:
                yield
            finally:
                with shared.lock:
                    shared.section = shared.section_title = None
            return
        start = shared.log.open_section(key, self._line(title))
        if start is not None:
            self._emit(start)
        try:
            yield
        finally:
            end = shared.log.close_section(key)
            if end is not None:
                self._emit(end)
            with shared.lock:
                shared.section = None


def encoded_forms(secret: str) -> list[str]:
    """`secret` and how a server may write it back: URL-encoded (path, query, form; hex
    digits upper or lower case), JSON-escaped (non-ASCII escaped or not, `/` escaped or
    not, `<>&` escaped as Go's encoder does), HTML-escaped, and in base64."""
    escaped = json.dumps(secret)[1:-1]
    go = escaped.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    quoted = [urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret, safe="")]
    raw = secret.encode()
    forms = [
        secret,
        *quoted,
        *(_PERCENT.sub(lambda m: m[0].lower(), q) for q in quoted),
        escaped,
        json.dumps(secret, ensure_ascii=False)[1:-1],
        escaped.replace("/", "\\/"),
        go,
        html.escape(secret, quote=False),
        html.escape(secret),
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
    ]
    return list(dict.fromkeys(forms))


_PERCENT = re.compile(r"%[0-9A-F]{2}")


def user_infos(url: str) -> list[str]:
    """The user info of a URL as a client reads it, and everything between its `://` and
    its last `@` (what a person meant, if the password holds `/`, `?` or `#`)."""
    found = []
    try:
        netloc = urllib.parse.urlsplit(url).netloc
    except ValueError:  # not a URL (an unclosed `[`): what lies before its last `@` is
        netloc = ""
    if "@" in netloc:
        found.append(netloc.rpartition("@")[0])
    _, sep, rest = url.partition("://")
    if sep and "@" in rest:
        found.append(rest.rpartition("@")[0])
    return list(dict.fromkeys(i for i in found if i))


def hide_user_info(url: str) -> str:
    """A URL to quote in a message whatever its user info holds: everything between its
    `://` and its last `@` as `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return redact_url(url)
    return f"{scheme}://{MASK}@{rest.rpartition('@')[2]}"


# The authority of a URL up to its last `@`, so that a password with an unencoded `@` is
# hidden whole; quotes and backslashes end it (a URL inside JSON or a quoted message).
_USER_INFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^\s/?#\\\"'<>`]*)@")


def redact_url(text: str) -> str:
    """`text` (a URL, or a message quoting URLs) with the password of every URL's user
    info as `***`, and a lone user too (`https://TOKEN@host` carries a token there)."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _ = match["info"].partition(":")
        return f"{match['scheme']}{user + colon if colon else ''}{MASK}@"

    return _USER_INFO.sub(hide, text)
