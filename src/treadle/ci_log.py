"""How each CI system's log takes treadle's lines: masks, folded sections and annotations
(GitHub Actions, GitLab CI), and nothing a line quotes from elsewhere able to drive it."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping

# --- the log: how each CI system masks secrets, folds sections and flags errors -----------
#
# What treadle prints may hold text it did not write: a server's error body, a job's log.
# Each log format makes such text inert: it cannot open or close a section, forge an
# annotation, set an output or a mask. `line` does it for treadle's own messages, which
# may quote a server; `untrusted` for a job's log lines, echoed as they are.

# C0 controls but tab, DEL and C1 controls: ESC opens GitLab's section markers and Jenkins'
# console notes (`\x1b[8mha:`), a carriage return overwrites what a line showed.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def visible_controls(text: str, *, keep_newlines: bool = False) -> str:
    """Control characters shown, not obeyed: caret notation for C0 and DEL (`\\x1b` as
    `^[`, `\\r` as `^M`), `\\x9b` for C1. Tab stays; line feeds stay when asked."""

    def show(match: re.Match[str]) -> str:
        char = match.group()
        if char == "\n" and keep_newlines:
            return char
        code = ord(char)
        return f"^{chr(code ^ 0x40)}" if code < 0x20 or code == 0x7F else f"\\x{code:02x}"

    return _CONTROL.sub(show, text)


class PlainLog:
    """A terminal, or a CI system whose log has no markup of its own (Jenkins)."""

    def mask(self, secret: str) -> list[str]:
        """Lines that tell the CI system to hide `secret` from here on."""
        return []

    def line(self, message: str) -> str:
        """One message of treadle's own, made inert; its line breaks stay line breaks."""
        return visible_controls(message, keep_newlines=True)

    def untrusted(self, lines: list[str]) -> list[str]:
        """A batch of lines someone else wrote (a job's log), each made inert and kept to
        one line. The caller prints them together, nothing in between."""
        return [visible_controls(line) for line in lines]

    def open_section(self, key: str, title: str) -> str | None:
        return None

    def close_section(self, key: str) -> str | None:
        return None

    def error(self, message: str) -> str:
        return f"error: {self.line(message)}"

    def warning(self, message: str) -> str:
        return f"warning: {self.line(message)}"


# The runner reads a line as a workflow command when, past leading whitespace, it starts
# with `::`, or when it holds `##[` anywhere (the older form); and it breaks lines at `\r`
# as well as `\n` (actions/runner: ActionCommand.TryParseV2 and TryParse, ProcessInvoker).
_RUNNER_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def not_a_command(line: str) -> str:
    """`line` as GitHub's runner will not read a command from: `##[` as `## [`, and a
    leading `::` as `: :` (indenting would not do: the runner strips leading whitespace)."""
    line = line.replace("##[", "## [")
    body = line.lstrip()
    if body.startswith("::"):
        return f"{line[: len(line) - len(body)]}: :{body[2:]}"
    return line


class GitHubLog(PlainLog):
    """GitHub Actions' workflow commands: the runner reads them from the step's stdout and
    stderr. A group cannot hold another; an annotation is one line, so its message is
    escaped."""

    def mask(self, secret: str) -> list[str]:
        # The runner masks line by line: each line of a multi-line secret on its own.
        return [f"::add-mask::{line}" for line in secret.splitlines() if line.strip()]

    def line(self, message: str) -> str:
        return "\n".join(
            not_a_command(visible_controls(part)) for part in _RUNNER_LINE_BREAK.split(message)
        )

    def untrusted(self, lines: list[str]) -> list[str]:
        """The lines between `::stop-commands::TOKEN` and `::TOKEN::`: the runner obeys no
        command in between but the one that names the token. The token is random, new for
        every batch and absent from it (the runner compares it ignoring case), so a job
        can neither guess it nor end the pause early. The lines keep their colours."""
        if not lines:
            return []
        import secrets

        text = "\n".join(lines).lower()
        while (token := f"treadle-{secrets.token_hex(16)}") in text:
            pass
        return [f"::stop-commands::{token}", *lines, f"::{token}::"]

    def open_section(self, key: str, title: str) -> str:
        return f"::group::{github_escape(' '.join(title.splitlines()))}"

    def close_section(self, key: str) -> str:
        return "::endgroup::"

    def error(self, message: str) -> str:
        return f"::error::{github_escape(message)}"

    def warning(self, message: str) -> str:
        return f"::warning::{github_escape(message)}"


def github_escape(message: str) -> str:
    return message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


class GitLabLog(PlainLog):
    """GitLab's collapsible sections: a named start and end, each with a Unix time from
    which GitLab shows how long the section took. They need ESC and a carriage return,
    which no other line keeps (`PlainLog.line`, `PlainLog.untrusted`)."""

    def open_section(self, key: str, title: str) -> str:
        return (
            f"\x1b[0Ksection_start:{int(time.time())}:{key}[collapsed=true]\r\x1b[0K"
            f"{visible_controls(title)}"
        )

    def close_section(self, key: str) -> str:
        return f"\x1b[0Ksection_end:{int(time.time())}:{key}\r\x1b[0K"


def log_format(environ: Mapping[str, str] = os.environ) -> PlainLog:
    """The log markup of the CI system this runs in, from the variables each one sets."""
    if environ.get("GITHUB_ACTIONS") == "true":
        return GitHubLog()
    if environ.get("GITLAB_CI") == "true":
        return GitLabLog()
    return PlainLog()
