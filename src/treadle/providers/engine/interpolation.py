"""Compose's variable interpolation and its environment files, as `docker compose` reads
them.

    $VAR  ${VAR}          the variable's value ("" and a warning when it is unset)
    ${VAR:-default}       default when VAR is unset or empty; ${VAR-default}: when unset
    ${VAR:?message}       an error when VAR is unset or empty; ${VAR?message}: when unset
    ${VAR:+other}         other when VAR is set and not empty, else ""; ${VAR+other}: when set
    $$                    a literal $

Defaults, messages and replacements may hold interpolations themselves
(`${A:-${B:-x}}`); a `$` that starts none of these stays as it is. Only values are
interpolated, never the keys of a mapping.

An environment file (`.env` beside a Compose file, a service's `env_file`) holds
`KEY=VALUE` lines: `#` comments and blank lines are skipped, `export ` may lead, a value
in single quotes is taken as written, one in double quotes may hold `\\n`, `\\t`, `\\"`
and `\\\\` and is interpolated, an unquoted one is trimmed, loses a ` #` comment and is
interpolated. Variables are looked up among the lines above, then in the environment
given. A bare `KEY` takes the environment's value, if any.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from treadle.errors import InputError

_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*")
_OPERATORS = (":-", ":?", ":+", "-", "?", "+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "\\$"}
_LINE = re.compile(r"(?:export\s+)?([^=\s#][^=\s]*)\s*(?:=(.*))?")


def interpolate(
    value: Any, env: Mapping[str, str], where: str, unset: Callable[[str], None]
) -> Any:
    """Every string in `value` (lists and mappings walked, keys left alone) with its
    variables filled from `env`; `unset(name)` hears of each variable used without a
    value or default. InputError names the place (`where`, `services.web.image`)."""
    if isinstance(value, str):
        return substitute(value, env, where, unset)
    if isinstance(value, list):
        return [interpolate(v, env, f"{where}[{i}]", unset) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {
            k: interpolate(v, env, f"{where}.{k}" if where else str(k), unset)
            for k, v in value.items()
        }
    return value


def substitute(text: str, env: Mapping[str, str], where: str, unset: Callable[[str], None]) -> str:
    result, end = _expand(text, 0, env, where, unset, closing=False)
    return result


def _expand(
    text: str,
    i: int,
    env: Mapping[str, str],
    where: str,
    unset: Callable[[str], None],
    *,
    closing: bool,
) -> tuple[str, int]:
    """The text from `i` on, expanded, up to the end (or, when `closing`, up to the `}`
    that closes the braced expression it is part of); and where it stopped."""
    out: list[str] = []
    depth = 0
    while i < len(text):
        char = text[i]
        if closing and char == "}" and depth == 0:
            return "".join(out), i
        if char != "$":
            # Braces of the text itself (a default holding `{}`) must pair up inside one.
            depth += char == "{"
            depth -= char == "}" and depth > 0
            out.append(char)
            i += 1
            continue
        following = text[i + 1 : i + 2]
        if following == "$":
            out.append("$")
            i += 2
        elif following == "{":
            value, i = _braced(text, i + 2, env, where, unset)
            out.append(value)
        elif m := _NAME.match(text, i + 1):
            out.append(_lookup(m[0], env, unset))
            i = m.end()
        else:
            out.append("$")
            i += 1
    if closing:
        raise InputError(f"{where}: invalid interpolation: a ${{ is never closed")
    return "".join(out), i


def _braced(
    text: str, i: int, env: Mapping[str, str], where: str, unset: Callable[[str], None]
) -> tuple[str, int]:
    """`${...}` from just after `${`: its value and the index after its `}`."""
    m = _NAME.match(text, i)
    if m is None:
        raise InputError(f"{where}: invalid interpolation: ${{ must be followed by a variable name")
    name, i = m[0], m.end()
    if i == len(text):
        raise InputError(f"{where}: invalid interpolation: a ${{ is never closed")
    if text[i : i + 1] == "}":
        return _lookup(name, env, unset), i + 1
    operator = next((op for op in _OPERATORS if text.startswith(op, i)), None)
    if operator is None:
        raise InputError(
            f"{where}: invalid interpolation: after ${{{name} comes }}, :-, -, :?, ?, :+ or +"
        )
    argument, end = _expand(text, i + len(operator), env, where, unset, closing=True)
    value = env.get(name)
    present = value is not None and (value != "" or ":" not in operator)
    if operator.endswith("-"):
        result = value if present and value is not None else argument
    elif operator.endswith("+"):
        result = argument if present else ""
    elif present and value is not None:
        result = value
    else:
        why = argument or ("empty" if value == "" else "unset")
        raise InputError(f"{where}: required variable {name} is missing a value: {why}")
    return result, end + 1


def _lookup(name: str, env: Mapping[str, str], unset: Callable[[str], None]) -> str:
    value = env.get(name)
    if value is None:
        unset(name)
        return ""
    return value


def parse_env_file(
    text: str, env: Mapping[str, str], where: str, *, raw: bool = False
) -> dict[str, str]:
    """The variables of an environment file (see the module's docstring); `raw`: values
    as written, neither unquoted nor interpolated."""
    found: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        at = f"{where} line {number}"
        if raw:
            key, equals, value = line.partition("=")
            if equals:
                found[key.strip()] = value
            continue
        m = _LINE.fullmatch(stripped)
        if m is None or not _NAME.fullmatch(m[1]):
            raise InputError(f"{at}: expected KEY=VALUE (a variable name, then =)")
        key, value = m[1], m[2]
        if value is None:
            if key in env:
                found[key] = env[key]
            continue
        lookup = {**env, **found}
        found[key] = _value(value.strip(), lookup, at)
    return found


def _value(text: str, env: Mapping[str, str], where: str) -> str:
    def ignore(_: str) -> None:
        pass

    if text[:1] in ("'", '"'):
        quote = text[0]
        end = _closing_quote(text, quote)
        if end < 0:
            raise InputError(f"{where}: the value's {quote} is never closed")
        rest = text[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise InputError(f"{where}: unexpected {rest!r} after the quoted value")
        inner = text[1:end]
        if quote == "'":
            return inner.replace("\\'", "'")
        unescaped = re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]), inner)
        # `\$` stays a literal dollar: doubled, so that interpolation keeps one.
        return substitute(unescaped.replace("\\$", "$$"), env, where, ignore)
    comment = re.search(r"\s#", text)
    if comment:
        text = text[: comment.start()].rstrip()
    return substitute(text, env, where, ignore)


def _closing_quote(text: str, quote: str) -> int:
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return -1
