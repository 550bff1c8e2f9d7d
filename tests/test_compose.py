"""A Compose file read as `docker compose` reads it, without an engine: interpolation,
environment files, the schema, picking the service, and what comes along with it; and
the refusals, each one line naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from treadle.errors import InputError
from treadle.providers.engine import compose, spec
from treadle.providers.engine.interpolation import interpolate, parse_env_file, substitute

ENV = {"SET": "value", "EMPTY": ""}


def sub(text: str, env: dict[str, str] = ENV) -> str:
    return substitute(text, env, "x", lambda name: None)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$SET ${SET}", "value value"),
        ("${UNSET}|$UNSET|${EMPTY}", "||"),
        ("${UNSET:-d} ${EMPTY:-d} ${SET:-d}", "d d value"),
        ("${UNSET-d} ${EMPTY-d} ${SET-d}", "d  value"),
        ("${UNSET:+r}|${EMPTY:+r}|${SET:+r}", "||r"),
        ("${UNSET+r}|${EMPTY+r}|${SET+r}", "|r|r"),
        ("${UNSET:-${ALSO:-${SET}}}", "value"),
        ("${UNSET:-{a}}", "{a}"),
        ("$$SET $${SET} $$", "$SET ${SET} $"),
        ("cost: 5$ and $1 and $-", "cost: 5$ and $1 and $-"),
        ("${SET?must} ${EMPTY?must}", "value "),
    ],
)
def test_interpolation_follows_compose(text: str, expected: str) -> None:
    assert sub(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("${UNSET:?give it}", "required variable UNSET is missing a value: give it"),
        ("${EMPTY:?}", "required variable EMPTY is missing a value: empty"),
        ("${UNSET?}", "required variable UNSET is missing a value: unset"),
        ("${SET", "a ${ is never closed"),
        ("${1x}", "${ must be followed by a variable name"),
        ("${SET/a/b}", "after ${SET comes }, :-, -, :?, ?, :+ or +"),
    ],
)
def test_bad_interpolation_is_an_input_error(text: str, message: str) -> None:
    """Named by its place, never quoted: the value may be a password."""
    with pytest.raises(InputError, match="^x: ") as refused:
        sub(f"Pa55w0rd-{text}")
    assert message in str(refused.value)
    assert "Pa55w0rd" not in str(refused.value)


def test_only_values_are_interpolated_and_unset_names_are_told() -> None:
    told: list[str] = []
    document = {"$SET": ["$SET", {"k": "${NOPE}"}], "n": 3}
    assert interpolate(document, ENV, "", told.append) == {"$SET": ["value", {"k": ""}], "n": 3}
    assert told == ["NOPE"]


def test_an_env_file_reads_as_compose_reads_it() -> None:
    text = "\n".join(
        [
            "# a comment",
            "",
            "PLAIN=a b  # trailing comment",
            "export EXPORTED=1",
            "SINGLE='$PLAIN \\n kept'",
            'DOUBLE="${PLAIN}\\tx # not a comment"',
            "HASH=a#b",
            "FROM_ENV",
            "NOT_IN_ENV",
            "EMPTY=",
            "REF=${SET:-no}-$EXPORTED",
        ]
    )
    assert parse_env_file(text, {"SET": "outer", "FROM_ENV": "e"}, "f") == {
        "PLAIN": "a b",
        "EXPORTED": "1",
        "SINGLE": "$PLAIN \\n kept",
        "DOUBLE": "a b\tx # not a comment",
        "HASH": "a#b",
        "FROM_ENV": "e",
        "EMPTY": "",
        "REF": "outer-1",
    }
    with pytest.raises(InputError, match="f line 1: expected KEY=VALUE") as refused:
        parse_env_file("API_KEY: EnvFileSecret99", {}, "f")
    assert "EnvFileSecret99" not in str(refused.value)
    with pytest.raises(InputError, match="f line 1: the value's \" is never closed"):
        parse_env_file('A="open', {}, "f")


def write(folder: Path, document: Any, name: str = "compose.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(document) if not isinstance(document, str) else document)
    return path


def load(path: Path, service: str | None = None, **env: str) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    return compose.load_service(document, str(path), service, environ=env)


def test_a_service_comes_with_its_env_files_declarations_and_absolute_paths(
    tmp_path: Path,
) -> None:
    (tmp_path / ".env").write_text("TAG=from-dotenv\nNET=backnet\n")
    (tmp_path / "web.env").write_text("A=from-file\nB=from-file\n")
    (tmp_path / "token.txt").write_text("s3cret")
    path = write(
        tmp_path,
        """
services:
  web:
    image: web:${TAG}
    env_file: [web.env, {path: missing.env, required: false}]
    environment: {B: from-environment, C: "$$literal", FROM_SHELL: null}
    networks: {back: {aliases: [web]}}
    volumes: [data:/data, ./conf:/etc/web:ro, /abs:/abs]
    secrets: [token]
  db:
    image: db
networks:
  back: {name: "${NET}"}
volumes:
  data: {}
secrets:
  token: {file: ./token.txt}
""",
    )
    web = load(path, "web", TAG="from-shell", FROM_SHELL="shell")
    assert web["image"] == "web:from-shell", "the environment wins over .env"
    assert web["environment"] == {
        "A": "from-file",
        "B": "from-environment",
        "C": "$literal",
        "FROM_SHELL": "shell",
    }
    assert "env_file" not in web
    assert web["volumes"] == ["data:/data", f"{tmp_path}/conf:/etc/web:ro", "/abs:/abs"]
    assert web[compose.DECLARED] == {
        "networks": {"back": {"name": "backnet"}},
        "volumes": {"data": {"name": "data"}},
        "secrets": {"token": {"name": "token", "file": str(tmp_path / "token.txt")}},
    }
    workload = spec.parse(web, "web:1", spec.SWARM)
    assert workload.networks == (spec.Network("backnet", ("web",)),)
    assert workload.mounts[0] == {"Type": "volume", "Target": "/data", "Source": "data"}
    assert workload.mounts[1]["Source"] == str(tmp_path / "conf")
    assert workload.secrets == (
        {"SecretName": "token", "File": {"Name": "token", "UID": "0", "GID": "0", "Mode": 0o444}},
    )


@pytest.mark.parametrize(
    "document, service, message",
    [
        (
            {"services": {"a": {}, "b": {}}},
            None,
            "holds the services a, b: choose one with --service",
        ),
        ({"services": {"a": {}}}, "b", "has no service 'b': it has a"),
        ({"services": {"a": {"image": 3}}}, None, "services.a.image: 3 is not of type 'string'"),
        ({"services": {"a": {"imag": "x"}}}, None, "services.a: "),
        ({"services": {"a": {"networks": ["n"]}}}, None, "services.a.networks: n is not declared"),
        (
            {"services": {"a": {"image": "${NOPE:?set NOPE}"}}},
            None,
            "services.a.image: required variable NOPE is missing a value: set NOPE",
        ),
        (
            {"services": {"a": {"env_file": "gone.env"}}},
            None,
            "services.a: env_file gone.env does not exist",
        ),
    ],
)
def test_a_bad_compose_file_is_one_line(
    tmp_path: Path, document: dict[str, Any], service: str | None, message: str
) -> None:
    with pytest.raises(InputError) as refused:
        load(write(tmp_path, document), service)
    text = str(refused.value)
    assert text.startswith(f"compose file {tmp_path}/compose.yaml"), text
    assert message in text and "\n" not in text


def test_the_schema_ships_with_a_package() -> None:
    schema = compose.schema()
    assert "service" in schema["$defs"]
