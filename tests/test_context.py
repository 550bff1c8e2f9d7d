import io
import json
import sys
import time

import pytest

from treadle.context import Context, load_document
from treadle.errors import InputError
from treadle.limits import MAX_DEPTH

# Only a guard against hangs: each case takes milliseconds.
QUICK = 2.0


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


def test_yaml_anchors_and_merge_keys_still_work(tmp_path):
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "x-defaults: &defaults\n"
        "  restart: always\n"
        "  environment: &env {LOG: info}\n"
        "services:\n"
        "  web:\n"
        "    <<: *defaults\n"
        "    image: web:1\n"
        "  worker:\n"
        "    <<: *defaults\n"
        "    environment: *env\n"
    )
    services = load_document(str(compose), "spec file")["services"]
    assert services["web"] == {
        "restart": "always",
        "environment": {"LOG": "info"},
        "image": "web:1",
    }
    assert services["worker"]["environment"] == {"LOG": "info"}


def test_yaml_builds_only_what_json_can_say(tmp_path):
    path = tmp_path / "ctx.yaml"
    path.write_text("released: 2024-05-01\nat: 2024-05-01 10:00:00\n")
    assert load_document(str(path), "context file") == {
        "released": "2024-05-01",
        "at": "2024-05-01 10:00:00",
    }
    path.write_text("key: !!binary aGVsbG8=\n")
    with pytest.raises(InputError, match="line 1: !!binary has no JSON equivalent"):
        load_document(str(path), "context file")


def test_nesting_up_to_the_limit_loads_and_one_more_level_does_not(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    load_document(str(path), "spec file")
    path.write_text("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    with pytest.raises(InputError, match=f"nested deeper than {MAX_DEPTH} levels"):
        load_document(str(path), "spec file")


def test_every_real_payload_is_within_the_limits(shared_data):
    """Marathon and Metronome app and job definitions, group dumps (1.8 MB), schemas."""
    paths = [
        p
        for p in sorted(shared_data.rglob("*"))
        if p.suffix in (".json", ".yml", ".yaml") and p.name != "bad.json"
    ]
    assert paths
    for path in paths:
        load_document(str(path), "spec file")


def expect_refusal(ctx, text, fix):
    started = time.monotonic()
    with pytest.raises(InputError, match=fix) as e:
        ctx.render(text, "--image")
    assert time.monotonic() - started < QUICK
    message = str(e.value)
    assert "--image" in message and "\n" not in message and len(message) < 300
    return message


@pytest.fixture
def big():
    """A context as large as a real one gets: 2,000 strings of 1 kB."""
    return Context({"a": list(range(10)), "big": ["x" * 1000] * 2000}, ["big.json"])


@pytest.mark.parametrize(
    ("expression", "fix"),
    [
        ("a." * 600 + "b", "1201 characters long, more than the 1024 allowed"),
        ("[" * 40 + "a" + "]" * 40, "brackets nest 40 deep, more than the 16 allowed"),
        ("!" * 900 + "a", "too deeply nested"),
        # Each pipe doubles a value without copying it: 2**60 copies of the context.
        ("|".join(["[@, @]"] * 60), "builds more than 8 MiB"),
        ("to_string(" + "|".join(["[@, @]"] * 60) + ")", "builds more than 8 MiB"),
        # Each flatten copies the doubled list for real.
        ("a" + "|[@, @][]" * 60, "takes more than 250,000 steps"),
        ("a" + "|map(&[@, @], @)[]" * 40, "takes more than 250,000 steps"),
        ("join('', big)", "renders more than 1 MiB"),
        ("big", "renders more than 1 MiB"),
    ],
    ids=[
        "long",
        "nested",
        "recursive",
        "doubling",
        "to_string of doubling",
        "flatten doubling",
        "map doubling",
        "join",
        "large selection",
    ],
)
def test_a_pathological_expression_is_one_input_error_quickly(big, expression, fix):
    message = expect_refusal(big, "{{ " + expression + " }}", fix)
    assert expression[:20] in message


def test_the_placeholders_of_one_value_render_at_most_the_limit_in_all(big):
    expect_refusal(big, {"env": ["{{ big[0] }}"] * 2000}, "with the placeholders before it")
    expect_refusal(big, ["{{ a[0] }}"] * 10_001, "holds more than 10,000 placeholders")


def test_rendering_stays_linear(big):
    started = time.monotonic()
    assert big.render("{{" * 200_000) == "{{" * 200_000
    spec = {"env": {f"K{i}": f"v{{{{ a[{i % 10}] }}}}" for i in range(5_000)}, "x": "y" * 10**6}
    assert big.render(spec)["env"]["K4999"] == "v9"
    assert time.monotonic() - started < QUICK
