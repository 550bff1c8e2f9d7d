"""Outputs a job hands to later steps: `TREADLE_OUTPUT key=value` and
`TREADLE_OUTPUT_JSON {...}` lines in its stdout, and an output file holding a JSON object
or Java properties (told apart by content)."""

from __future__ import annotations

import json
import re
from typing import Any

from treadle.errors import StageFailed

_LINE = re.compile(r"^TREADLE_OUTPUT(?P<json>_JSON)?[ \t]+(?P<rest>.*?)\r?$", re.MULTILINE)


def from_log(text: str) -> dict[str, Any]:
    """Outputs announced in a log, later lines winning."""
    outputs: dict[str, Any] = {}
    for m in _LINE.finditer(text):
        rest = m["rest"].strip()
        if m["json"]:
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                raise StageFailed(
                    f"the job printed TREADLE_OUTPUT_JSON that is not JSON: {rest[:200]}"
                ) from None
            if not isinstance(value, dict):
                raise StageFailed(f"TREADLE_OUTPUT_JSON must be a JSON object, not {rest[:200]}")
            outputs.update(value)
        else:
            key, sep, value = rest.partition("=")
            if not sep or not key.strip():
                raise StageFailed(f"the job printed TREADLE_OUTPUT without key=value: {rest[:200]}")
            outputs[key.strip()] = value
    return outputs


def from_file(data: bytes, path: str) -> dict[str, Any]:
    """A JSON object, or else Java properties."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise StageFailed(f"output file {path} is not UTF-8 text") from None
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise StageFailed(
                f"output file {path}: invalid JSON at line {e.lineno}: {e.msg}"
            ) from None
        if not isinstance(value, dict):
            raise StageFailed(f"output file {path} must hold a JSON object")
        return value
    return parse_properties(text)


def parse_properties(text: str) -> dict[str, str]:
    """Java .properties: `key=value`, `key: value` or `key value`; `#`/`!` comments;
    a trailing backslash continues a line; `\\n`, `\\t`, `\\uXXXX` escapes."""
    props: dict[str, str] = {}
    logical = ""
    for raw in text.splitlines():
        line = raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        if _continues(line):
            logical += line[:-1]
            continue
        logical += line
        key, value = _split_property(logical)
        props[_unescape(key)] = _unescape(value)
        logical = ""
    if logical:
        key, value = _split_property(logical)
        props[_unescape(key)] = _unescape(value)
    return props


def _continues(line: str) -> bool:
    trailing = len(line) - len(line.rstrip("\\"))
    return trailing % 2 == 1


def _split_property(line: str) -> tuple[str, str]:
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t":
            key, rest = line[:i], line[i:].lstrip(" \t")
            if rest[:1] in ("=", ":") and c in " \t":
                rest = rest[1:]
            elif c in "=:":
                rest = rest[1:]
            return key, rest.lstrip(" \t")
        i += 1
    return line, ""


def _unescape(text: str) -> str:
    def replace(m: re.Match[str]) -> str:
        c = m.group(1)
        if c.startswith("u"):
            return chr(int(c[1:], 16))
        return {"n": "\n", "t": "\t", "r": "\r", "f": "\f"}.get(c, c)

    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", replace, text)
