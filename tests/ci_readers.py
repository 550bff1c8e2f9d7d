"""How each CI system reads what treadle writes, modelled on its own source, so that tests
can ask what a log or an outputs file makes the CI system do.

- GitHub's runner (actions/runner): ActionCommandManager.TryProcessCommand with
  ActionCommand.TryParseV2 (`::name props::data`, past leading whitespace) and TryParse
  (`##[name props]data` anywhere in a line), the stop-commands pause, lines broken at
  `\\r\\n`, `\\r` or `\\n` (StreamReader.ReadLine); FileCommandManager for GITHUB_OUTPUT.
- GitLab: the trace's section markers (Gitlab::Regex.build_trace_section_regex).
"""

from __future__ import annotations

import re

# The commands the runner knows; the stop token joins them while commands are stopped.
GITHUB_COMMANDS = {
    "add-mask",
    "add-matcher",
    "add-path",
    "debug",
    "echo",
    "endgroup",
    "error",
    "group",
    "notice",
    "remove-matcher",
    "save-state",
    "set-env",
    "set-output",
    "stop-commands",
    "warning",
}


def _parse(line: str, registered: set[str]) -> tuple[str, str] | None:
    """(command, data) when the runner reads `line` as a command, else None."""
    body = line.lstrip()
    if body.startswith("::") and (end := body.find("::", 2)) >= 0:
        name = body[2:end].split(" ", 1)[0]
        if name.lower() in registered:
            return name, body[end + 2 :]
    if (start := line.find("##[")) >= 0 and (end := line.find("]", start)) >= 0:
        name = line[start + 3 : end].split(" ", 1)[0]
        if name.lower() in registered:
            return name, line[end + 1 :]
    return None


def github_commands(log: str) -> list[tuple[str, str]]:
    """The commands GitHub's runner obeys in `log`, in order (stop and resume included)."""
    obeyed = []
    token: str | None = None
    for line in re.split(r"\r\n|\r|\n", log):
        registered = GITHUB_COMMANDS | ({token.lower()} if token else set())
        command = _parse(line, registered)
        if command is None:
            continue
        name, data = command
        if token is not None:
            if name.lower() == token.lower():
                obeyed.append(command)
                token = None
            continue
        obeyed.append(command)
        if name.lower() == "stop-commands":
            token = data
    return obeyed


def github_outputs(text: str) -> list[tuple[str, str]]:
    """The step outputs a GITHUB_OUTPUT file sets, in order (a name may come twice)."""
    outputs = []
    lines = iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            name, value = line.split("=", 1)
        elif heredoc >= 0:
            name, delimiter = line.split("<<", 1)
            assert name and delimiter, f"the runner refuses {line!r}"
            value_lines = []
            for value_line in lines:
                if value_line == delimiter:
                    break
                value_lines.append(value_line)
            else:
                raise AssertionError(f"the runner finds no end to {name!r}")
            value = "\n".join(value_lines)
        else:
            raise AssertionError(f"the runner refuses {line!r}")
        outputs.append((name, value))
    return outputs


GITLAB_SECTION = re.compile(
    r"section_((?:start)|(?:end)):(\d+):([a-zA-Z0-9_.-]+)"
    r"(\[(?:\w+=\w+)(?:, ?(?:\w+=\w+))*\])?"
    r"\r\033\[0K"
)
