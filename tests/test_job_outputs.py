"""Job outputs: log lines and output files, as a later step reads them."""

from __future__ import annotations

import pytest

from treadle.errors import StageFailed
from treadle.stages.job_outputs import from_file, from_log


def test_log_lines_become_outputs_later_lines_winning() -> None:
    log = (
        "migrating...\n"
        "TREADLE_OUTPUT version=1.2.3\n"
        "TREADLE_OUTPUT url=http://x/?a=b\r\n"
        'TREADLE_OUTPUT_JSON {"ok": true, "count": 3}\n'
        "TREADLE_OUTPUT version=1.2.4\n"
        "echo TREADLE_OUTPUT ignored=not at the start\n"
    )
    assert from_log(log) == {"version": "1.2.4", "url": "http://x/?a=b", "ok": True, "count": 3}


@pytest.mark.parametrize(
    "line",
    [
        "TREADLE_OUTPUT novalue",
        "TREADLE_OUTPUT_JSON {bad",
        "TREADLE_OUTPUT_JSON [1]",
        # Not JSON to the steps that read the result (GitHub's fromJSON, jq).
        'TREADLE_OUTPUT_JSON {"a": NaN}',
        'TREADLE_OUTPUT_JSON {"a": -Infinity}',
        'TREADLE_OUTPUT_JSON {"a": 1e400}',
        # Deeper than any reader follows (Python's own parser gives up at about 1,000).
        "TREADLE_OUTPUT_JSON " + '{"a":' * 100_000,
        "TREADLE_OUTPUT_JSON " + '{"a":' * 65 + "1" + "}" * 65,
    ],
    ids=["no-value", "bad", "list", "nan", "infinity", "overflow", "recursion", "deep"],
)
def test_malformed_output_lines_fail_clearly(line: str) -> None:
    with pytest.raises(StageFailed, match="TREADLE_OUTPUT"):
        from_log(line + "\n")


def test_output_file_json_or_properties_by_content() -> None:
    assert from_file(b' {"version": "1.2.3", "ok": true}', "result.json") == {
        "version": "1.2.3",
        "ok": True,
    }
    assert from_file(b"version=1.2.3\nok=true\n", "result.properties") == {
        "version": "1.2.3",
        "ok": "true",
    }
    with pytest.raises(StageFailed, match="result.json: invalid JSON"):
        from_file(b'{"version": ', "result.json")
    with pytest.raises(StageFailed, match="not UTF-8"):
        from_file(b"\xff\xfe", "out")
    with pytest.raises(StageFailed, match="out.json: NaN is not a JSON value"):
        from_file(b'{"a": NaN}', "out.json")


def test_java_properties_syntax() -> None:
    text = (
        "# comment\n! also a comment\n\n"
        "a=1\nb : 2\nc 3\n"
        "d = spaced value  \n"
        "long = first \\\n       second\n"
        "escaped\\=key=v\n"
        "unicode=caf\\u00e9\n"
        "empty\n"
    )
    assert from_file(text.encode(), "result.properties") == {
        "a": "1",
        "b": "2",
        "c": "3",
        "d": "spaced value  ",
        "long": "first second",
        "escaped=key": "v",
        "unicode": "café",
        "empty": "",
    }


def test_java_properties_as_java_reads_them() -> None:
    text = (
        "message=Failed\u2028to start\n"  # only CR and LF end a line
        "form\ffeed\n"  # a form feed separates like a space
        "emoji=\\ud83d\\ude00\n"  # a \u escape is a UTF-16 unit: a pair is one character
    )
    assert from_file(text.encode(), "result.properties") == {
        "message": "Failed\u2028to start",
        "form": "feed",
        "emoji": "\U0001f600",
    }


def test_a_malformed_unicode_escape_fails_clearly() -> None:
    with pytest.raises(StageFailed, match=r"result.properties: invalid Java properties: .*\\u12g4"):
        from_file(b"version=\\u12g4\n", "result.properties")
