"""Bodies as --verbose shows them: text on one line, cut at VERBOSE_BODY characters, the
values of secrets and environments masked whatever the server put in them."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

MASK = "***"
# How much of a request's or answer's body --verbose shows.
VERBOSE_BODY = 500


def shown_body(
    body: bytes | str | None,
    content_type: str = "",
    redact: Callable[[str], str] = lambda text: text,
) -> str:
    """A body as --verbose shows it: text on one line, its secrets masked (`redact`)
    before it is cut at VERBOSE_BODY characters, so that no secret is shown in part;
    anything else by its size and type."""
    if not body:
        return ""
    if isinstance(body, bytes):
        textual = any(kind in content_type for kind in ("json", "text", "xml", "form"))
        try:
            if not textual and content_type:
                raise UnicodeDecodeError("utf-8", body, 0, 1, "not text")
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return f"({len(body)} bytes{', ' + content_type if content_type else ''})"
    else:
        text = body
    text = redact(hide_values(text)).strip().replace("\r", "\\r").replace("\n", "\\n")
    if len(text) <= VERBOSE_BODY:
        return text
    return f"{text[:VERBOSE_BODY]}... ({len(text)} characters)"


# JSON keys whose values a body shown by --verbose never shows, whatever they hold: an
# engine's secret and config data, credentials, the spec a server group records (its
# environment included: treadle.providers.base.LABEL_SPEC), and environments (an app's
# or a container's, where its secrets usually live; their names stay).
HIDDEN_KEYS = frozenset(
    {
        "data",
        "password",
        "token",
        "secret",
        "auth",
        "authorization",
        "identitytoken",
        "treadle.spec",
    }
)
ENVIRONMENT_KEYS = frozenset({"env", "environment"})


def hide_values(text: str) -> str:
    """`text` with the values under HIDDEN_KEYS and ENVIRONMENT_KEYS masked, when it is
    JSON that has any; otherwise as it is."""
    if not any(f'"{key}"' in text.lower() for key in HIDDEN_KEYS | ENVIRONMENT_KEYS):
        return text
    try:
        document = json.loads(text)
    except ValueError:
        return text
    # Written back as it came: compact, or with spaces after its separators.
    separators = (", ", ": ") if '": ' in text else (",", ":")
    return json.dumps(_hidden(document, None), separators=separators, ensure_ascii=False)


def _hidden(value: object, key: str | None) -> object:
    if key in ENVIRONMENT_KEYS:
        if isinstance(value, dict):
            return {k: MASK for k in value}
        if isinstance(value, list):  # an engine's ["NAME=value", ...]
            return [f"{str(v).partition('=')[0]}={MASK}" for v in value]
        return MASK
    if key in HIDDEN_KEYS:
        return MASK
    if isinstance(value, dict):
        return {k: _hidden(v, str(k).lower()) for k, v in value.items()}
    if isinstance(value, list):
        return [_hidden(v, None) for v in value]
    return value


def hidden(document: object) -> object:
    """A JSON document (a definition a dry run shows) with the values of its secrets and
    environments masked, as --verbose shows bodies."""
    return _hidden(document, None)


# Names of environment variables whose values are secrets to mask wherever they appear
# (a server quoting a definition back in an error, a job printing them): a word of the
# name (between `_`, `-` or `.`) says so, or KEY with a word that makes it a credential.
# Narrow on purpose: a masked value is masked everywhere, results included.
SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWD", "PASS", "PWD", "SECRET", "SECRETS", "TOKEN", "CREDENTIAL"}
    | {"CREDENTIALS", "APIKEY", "PASSPHRASE"}
)
KEY_KINDS = frozenset({"API", "ACCESS", "PRIVATE", "SECRET", "SIGNING", "ENCRYPTION", "MASTER"})


def secret_name(name: str) -> bool:
    words = set(re.split(r"[_.-]+", name.upper()))
    if words & SECRET_WORDS or ("KEY" in words and words & KEY_KINDS):
        return True
    return any(w.endswith(("PASSWORD", "PASSWD", "TOKEN", "SECRET")) for w in words)


def secret_values(document: object, key: str | None = None) -> Iterator[str]:
    """The values, in a definition, of environment variables named as secrets."""
    if key in ENVIRONMENT_KEYS:
        pairs = (
            document.items()
            if isinstance(document, dict)
            else (str(v).partition("=")[::2] for v in document)
            if isinstance(document, list)
            else ()
        )
        for name, value in pairs:
            if isinstance(value, str) and secret_name(str(name)):
                yield value
    elif isinstance(document, dict):
        for k, v in document.items():
            yield from secret_values(v, str(k).lower())
    elif isinstance(document, list):
        for item in document:
            yield from secret_values(item)
