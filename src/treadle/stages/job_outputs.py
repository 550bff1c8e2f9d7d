"""Outputs a job hands to later steps: `TREADLE_OUTPUT key=value` and
`TREADLE_OUTPUT_JSON {...}` lines in its stdout, and an output file holding a JSON object
or Java properties (told apart by content)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import javaproperties

from treadle.errors import StageFailed
from treadle.limits import MAX_DEPTH, deeper_than

_LINE = re.compile(r"^TREADLE_OUTPUT(?P<json>_JSON)?[ \t]+(?P<rest>.*?)\r?$", re.MULTILINE)


def from_log(text: str) -> dict[str, Any]:
    """Outputs announced in a log, later lines winning."""
    outputs: dict[str, Any] = {}
    for m in _LINE.finditer(text):
        rest = m["rest"].strip()
        if m["json"]:
            try:
                value = strict_json(rest)
            except ValueError as e:
                raise StageFailed(
                    f"the job printed TREADLE_OUTPUT_JSON that is not JSON ({e}): {rest[:200]}"
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
            value = strict_json(text)
        except json.JSONDecodeError as e:
            raise StageFailed(
                f"output file {path}: invalid JSON at line {e.lineno}: {e.msg}"
            ) from None
        except ValueError as e:
            raise StageFailed(f"output file {path}: {e}") from None
        if not isinstance(value, dict):
            raise StageFailed(f"output file {path} must hold a JSON object")
        return value
    try:
        return javaproperties.loads(text)
    except ValueError as e:  # a \u not followed by four hex digits, which Java refuses too
        raise StageFailed(f"output file {path}: invalid Java properties: {e}") from None


def strict_json(text: str) -> Any:
    """JSON as every later step reads it: no NaN or Infinity (not JSON, and refused by
    strict readers such as GitHub's fromJSON), nested at most MAX_DEPTH levels."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not a JSON value")

    def finite(number: str) -> float:
        found = float(number)
        return found if math.isfinite(found) else refuse(number)

    try:
        value = json.loads(text, parse_constant=refuse, parse_float=finite)
    except RecursionError:
        raise ValueError("nested too deep") from None
    if deeper_than(value, MAX_DEPTH):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return value
