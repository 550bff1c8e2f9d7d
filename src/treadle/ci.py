"""Each CI system's own ways: handing a result's values to later steps (GitHub step outputs
and summary, GitLab dotenv reports), marking up the log (masks, folded sections,
annotations: treadle.ci_log) and naming a run. Every CI quirk lives here and nowhere else."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from treadle.ci_log import visible_controls
from treadle.errors import InputError

Result = dict[str, Any]

# GitLab refuses a whole dotenv report of 5 KiB or more, or of more than 20 variables (its
# default instance limits), and takes variable names of letters, digits and `_` only.
DOTENV_MAX_BYTES = 5 * 1024 - 1
DOTENV_MAX_VARIABLES = 20
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_]")
# GitHub reads `name=value` and `name<<DELIMITER` lines: a name holding `=`, `<<` or a line
# break (a job's own output keys become field names) would let a value set other outputs.
_NOT_IN_AN_OUTPUT_NAME = re.compile(r"[^A-Za-z0-9_-]")


def output_name(name: str) -> str:
    """A step output's name: letters, digits, `_` and `-`, anything else as `_`."""
    return _NOT_IN_AN_OUTPUT_NAME.sub("_", name) or "_"


def dotenv_name(name: str) -> str:
    """A dotenv variable's name after `TREADLE_`: upper-case letters, digits and `_`."""
    return _NOT_IN_A_NAME.sub("_", name.upper()) or "_"


def heredoc_delimiter(value: str) -> str:
    """A delimiter for a multi-line value, random and checked not to occur in it, so that
    no line of the value can end it early."""
    import secrets  # imported when needed: most stages write no multi-line value

    while True:
        delimiter = f"treadle_{secrets.token_hex(16)}"
        if delimiter not in value:
            return delimiter


# Every result's `provenance` (the CI run that produced it: treadle.cli.runner) is for
# the record: a later step of the same run knows it from its own CI variables. It stays
# out of step outputs, dotenv reports and summaries; the JSON result keeps it.
RECORD_ONLY = ("provenance",)
# find-image's `deployed` (who deployed the server group it found) stays out of dotenv
# reports too: GitLab's 20 variables go to the fields that later jobs act on.
NOT_IN_DOTENV = (*RECORD_ONLY, "deployed")


def scalar_fields(
    result: Mapping[str, Any], prefix: str = "", skip: tuple[str, ...] = RECORD_ONLY
) -> Iterator[tuple[str, str]]:
    """Scalar fields as text, nested objects flattened one level (`error_message`), the
    top-level keys in `skip` left out."""
    for key, value in result.items():
        name = f"{prefix}{key}"
        if not prefix and key in skip:
            continue
        if isinstance(value, dict) and not prefix:
            yield from scalar_fields(value, prefix=f"{name}_")
        elif isinstance(value, bool):
            yield name, "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            yield name, str(value)
        elif value is None:
            yield name, ""


def github_outputs(result: Result, path: Path) -> None:
    """Step outputs for GitHub Actions: scalar fields and the whole result, names made
    plain (`output_name`), multi-line values written with a delimiter that cannot occur
    in them (a Windows runner also breaks lines at `\\r\\n`, so `\\r` counts too)."""
    lines = []
    url = environment_url(result)
    derived = [("environment_url", url)] if url else []
    for field, value in [*scalar_fields(result), *derived, ("result", json.dumps(result))]:
        name = output_name(field)
        if "\n" in value or "\r" in value:
            delimiter = heredoc_delimiter(value)
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    with path.open("a", encoding="utf-8") as f:
        f.writelines(lines)


def github_summary(result: Result, path: Path) -> None:
    """A heading with the outcome, a table of the fields (lists of names joined), and the
    error message whole, below the table, where its line breaks cannot break it."""
    icon = {"succeeded": "✅", "failed": "❌", "refused": "⛔"}.get(result.get("status", ""), "")
    rows = [f"### {icon} treadle {result.get('stage')}: {result.get('status')}\n", "\n"]
    url = environment_url(result)
    cells = [
        (output_name(name), value)
        for name, value in [
            *scalar_fields(result),
            *scalar_lists(result),
            *([("environment_url", url)] if url else []),
        ]
        if value and name not in ("stage", "status") and not name.startswith("error_")
    ]
    if cells:
        rows += ["| field | value |\n", "|---|---|\n"]
        rows += [f"| {name} | {markdown_code(value)} |\n" for name, value in cells]
    for key, items in object_lists(result):
        # One row per item (a deploy's `regions`), a column per scalar field.
        columns = list(dict.fromkeys(name for item in items for name, _ in scalar_fields(item)))
        rows += ["\n", f"**{output_name(key)}**\n", "\n"]
        rows += [f"| {' | '.join(map(output_name, columns))} |\n"]
        rows += [f"|{'---|' * len(columns)}\n"]
        for item in items:
            values = dict(scalar_fields(item))
            cells_of = (markdown_code(values[c]) if values.get(c) else "" for c in columns)
            rows += [f"| {' | '.join(cells_of)} |\n"]
    error = result.get("error")
    if isinstance(error, dict):
        fence = "`" * max(3, longest_run(str(error.get("message", "")), "`") + 1)
        rows += ["\n", f"**{error.get('type', 'error')}**\n", "\n"]
        rows += [f"{fence}text\n", f"{error.get('message', '')}\n", f"{fence}\n"]
    with path.open("a", encoding="utf-8") as f:
        f.writelines(rows + ["\n"])


def scalar_lists(result: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Top-level lists of plain values (`disabled_server_groups`), comma-separated."""
    for key, value in result.items():
        if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
            yield key, ", ".join(str(v) for v in value)


def object_lists(result: Mapping[str, Any]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Top-level lists of objects (a deploy's `regions`)."""
    for key, value in result.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            yield key, value


def environment_url(result: Mapping[str, Any]) -> str | None:
    """Where the result's server group answers, for a CI system's environment (GitHub's
    `environment.url`, GitLab's `environment:url`): a `url` field, else the first of its
    `endpoints` (`HOST:PORT`) as `http://HOST:PORT`."""
    url = result.get("url")
    if isinstance(url, str) and url:
        return url
    endpoints = result.get("endpoints")
    if isinstance(endpoints, list) and endpoints and isinstance(endpoints[0], str):
        first = endpoints[0]
        return first if "://" in first else f"http://{first}"
    return None


def markdown_code(value: str) -> str:
    """Inline code for a table cell: one line, pipes escaped, fenced past any backticks."""
    text = value.replace("\r", " ").replace("\n", " ").replace("|", "\\|")
    fence = "`" * (longest_run(text, "`") + 1)
    return f"{fence} {text} {fence}" if "`" in text else f"`{text}`"


def longest_run(text: str, char: str) -> int:
    return max((len(run) for run in re.findall(f"{re.escape(char)}+", text)), default=0)


# Lists the variables a dotenv file holds, so that treadle in a later job knows them for
# results and not for its own options (which read TREADLE_<OPTION> too).
RESULT_VARIABLES = "TREADLE_RESULT_VARIABLES"


def dotenv(result: Result, path: Path) -> list[str]:
    """`TREADLE_<FIELD>=value` lines for GitLab's artifacts:reports:dotenv: one line per
    value, so multi-line values are left out, and within GitLab's limits, so whatever
    would pass them is left out. A job's own `outputs`, which nothing bounds, go last: the
    stage's fields and its error always fit. A last line names the variables written (see
    `forget_result_variables`). Returns the names of the variables left out."""
    from treadle.results import write_atomically

    lines: list[str] = []
    names: list[str] = []
    size = len(f"{RESULT_VARIABLES}=\n")
    left_out: list[str] = []
    url = environment_url(result)
    fields = sorted(
        [*scalar_fields(result, skip=NOT_IN_DOTENV), *([("environment_url", url)] if url else [])],
        key=lambda field: field[0].startswith("outputs_"),
    )
    for name, value in fields:
        short = dotenv_name(name)
        line = f"TREADLE_{short}={value}\n"
        # Its line, and its name in the list of result variables.
        length = len(line.encode()) + len(short) + 1
        fits = len(lines) < DOTENV_MAX_VARIABLES - 1 and size + length <= DOTENV_MAX_BYTES
        if "\n" in value or "\r" in value or not fits:
            left_out.append(f"TREADLE_{short}")
            continue
        lines.append(line)
        names.append(short)
        size += length
    lines.append(f"{RESULT_VARIABLES}={' '.join(names)}\n")
    write_atomically(path, "".join(lines))
    return left_out


def forget_result_variables(environ: MutableMapping[str, str]) -> None:
    """An earlier job's dotenv report sets TREADLE_IMAGE, TREADLE_SERVER_GROUP, ... in
    this job's environment (GitLab passes them on, over the job's own variables). They
    are that stage's results: left to be read as this stage's options they would pick its
    server group, image or even --dry-run. The shell still has them for `$TREADLE_IMAGE`."""
    for short in environ.pop(RESULT_VARIABLES, "").split():
        environ.pop(f"TREADLE_{short}", None)


# A run key goes into labels on every provider and into log lines: short and plain.
_RUN_KEY = re.compile(r"[A-Za-z0-9_.-]{1,63}")


def check_run_key(key: str) -> str:
    """`key` when it is a valid run key, else an InputError that quotes it escaped."""
    if _RUN_KEY.fullmatch(key):
        return key
    shown = repr(key) if len(key) <= 80 else f"{key[:80]!r}..."
    raise InputError(f"invalid --run-key {shown}: use 1 to 63 letters, digits, '_', '.' or '-'")


def ci_run_key(environ: Mapping[str, str] = os.environ) -> str | None:
    """What names one deploy step across the CI system's own retries of it: the same for
    a retried job, different for the next pipeline. None outside a known CI system."""
    if environ.get("GITHUB_RUN_ID"):
        parts = ("github", environ["GITHUB_RUN_ID"], environ.get("GITHUB_JOB", ""))
    elif environ.get("CI_PIPELINE_ID"):
        parts = ("gitlab", environ["CI_PIPELINE_ID"], environ.get("CI_JOB_NAME", ""))
    elif environ.get("BUILD_TAG"):
        parts = ("jenkins", environ["BUILD_TAG"], environ.get("STAGE_NAME", ""))
    else:
        return None
    # Valid for check_run_key by construction.
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(p for p in parts if p))[:63]


def ci_attempt(environ: Mapping[str, str] = os.environ) -> str | None:
    """What tells a CI's retry of a job from its first attempt, where the CI system has
    it (Jenkins names each build in its run key already)."""
    if environ.get("GITHUB_RUN_ID"):
        return f"github-{environ.get('GITHUB_RUN_ATTEMPT', '1')}"
    if environ.get("CI_JOB_ID"):
        return f"gitlab-{environ['CI_JOB_ID']}"
    return None


# --- provenance: where a deploy came from, as labels on what it creates -------------------

# Label values stay short on every provider (a Marathon label, a Docker label, a Swarm
# service label); a run URL or ref longer than this is cut.
PROVENANCE_MAX = 200


def provenance(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The CI system, its run's URL, the commit, the ref and the actor, read from the
    variables each system sets, as treadle's labels (treadle.ci, treadle.run-url, ...)."""
    from treadle.providers.base import (
        LABEL_ACTOR,
        LABEL_CI,
        LABEL_COMMIT,
        LABEL_REF,
        LABEL_RUN_URL,
    )

    def get(*names: str) -> str:
        return next((environ[n] for n in names if environ.get(n)), "")

    if environ.get("GITHUB_ACTIONS") == "true":
        server, repository, run = (
            get("GITHUB_SERVER_URL"),
            get("GITHUB_REPOSITORY"),
            get("GITHUB_RUN_ID"),
        )
        attempt = get("GITHUB_RUN_ATTEMPT")
        url = f"{server}/{repository}/actions/runs/{run}" if server and repository and run else ""
        if url and attempt:
            url += f"/attempts/{attempt}"
        found = ("github", url, get("GITHUB_SHA"), get("GITHUB_REF"), get("GITHUB_ACTOR"))
    elif environ.get("GITLAB_CI") == "true":
        found = (
            "gitlab",
            get("CI_JOB_URL", "CI_PIPELINE_URL"),
            get("CI_COMMIT_SHA"),
            get("CI_COMMIT_REF_NAME"),
            get("GITLAB_USER_LOGIN"),
        )
    elif environ.get("JENKINS_URL") or environ.get("BUILD_TAG", "").startswith("jenkins-"):
        found = (
            "jenkins",
            get("BUILD_URL"),
            get("GIT_COMMIT"),
            get("BRANCH_NAME", "GIT_BRANCH"),
            get("BUILD_USER_ID", "CHANGE_AUTHOR"),
        )
    else:
        return {}
    labels = dict(
        zip((LABEL_CI, LABEL_RUN_URL, LABEL_COMMIT, LABEL_REF, LABEL_ACTOR), found, strict=True)
    )
    return {k: visible_controls(v)[:PROVENANCE_MAX] for k, v in labels.items() if v}


def provenance_fields(labels: Mapping[str, str]) -> dict[str, str]:
    """The provenance among a server group's or job's labels (or `provenance`'s own), as
    a result's fields: ci, run_url, commit, ref, actor (those present)."""
    from treadle.providers.base import (
        LABEL_ACTOR,
        LABEL_CI,
        LABEL_COMMIT,
        LABEL_REF,
        LABEL_RUN_URL,
    )

    names = {
        LABEL_CI: "ci",
        LABEL_RUN_URL: "run_url",
        LABEL_COMMIT: "commit",
        LABEL_REF: "ref",
        LABEL_ACTOR: "actor",
    }
    return {field: labels[label] for label, field in names.items() if labels.get(label)}
