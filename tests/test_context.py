import io
import json
import sys

import pytest

from treadle.context import Context
from treadle.errors import InputError


@pytest.fixture
def ctx(tmp_path):
    (tmp_path / "a.json").write_text(
        json.dumps({"image": "web:1", "n": 3, "tags": ["x"], "deep": {"v": "1.2"}})
    )
    (tmp_path / "b.yaml").write_text("image: web:2\nok: true\n")
    (tmp_path / "job.json").write_text(json.dumps({"outputs": {"version": "1.2.3"}}))
    return Context.load(
        [str(tmp_path / "a.json"), str(tmp_path / "b.yaml"), f"job={tmp_path / 'job.json'}"]
    )


def test_later_files_win_and_named_files_nest(ctx):
    assert ctx.data["image"] == "web:2"
    assert ctx.data["n"] == 3
    assert ctx.data["job"] == {"outputs": {"version": "1.2.3"}}


def test_a_whole_placeholder_keeps_its_json_type(ctx):
    assert ctx.render("{{ n }}") == 3
    assert ctx.render("{{ok}}") is True
    assert ctx.render("{{ tags }}") == ["x"]


def test_placeholders_inside_text_become_text(ctx):
    assert ctx.render("repo:{{ job.outputs.version }}") == "repo:1.2.3"
    assert ctx.render("{{ n }} of {{ tags }}") == '3 of ["x"]'
    assert ctx.render({"env": ["v={{ deep.v }}"], "n": 1}) == {"env": ["v=1.2"], "n": 1}


def test_a_placeholder_that_matches_nothing_names_expression_and_files(ctx, tmp_path):
    with pytest.raises(InputError) as e:
        ctx.render("{{ outputs.missing }}", "--image")
    message = str(e.value)
    assert "{{ outputs.missing }}" in message and "--image" in message and "a.json" in message


def test_invalid_expression_is_an_input_error(ctx):
    with pytest.raises(InputError, match="invalid expression"):
        ctx.render("{{ a[ }}")


def test_without_context_a_placeholder_says_so():
    with pytest.raises(InputError, match="no --context given"):
        Context.load([]).render("{{ x }}")


@pytest.mark.parametrize(
    ("content", "fix"),
    [
        (b"{", "invalid JSON at line 1"),
        (b"a: [\n", "invalid YAML"),
        (b"", "empty"),
        (b"[1, 2]", "expected an object"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_broken_context_files_name_the_file(tmp_path, content, fix):
    path = tmp_path / "ctx.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=fix) as e:
        Context.load([str(path)])
    assert str(path) in str(e.value)


def test_missing_context_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        Context.load([str(tmp_path / "nope.json")])


def test_stdin_is_read_for_a_dash(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"image": "web:3"}')))
    assert Context.load(["-"]).data == {"image": "web:3"}
