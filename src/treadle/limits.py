"""How much input treadle accepts, and the cheap checks that hold input to it.

Context files, spec files and placeholders come from CI configuration and from what
earlier jobs wrote, so any of them may be huge, deep or self-referencing. Each check
here refuses such input in well under a second, before a parser or a walker could
recurse, block or allocate its way into a crash. The callers turn the refusals into
`InputError` lines that name the file or the expression.
"""

from __future__ import annotations

import math
import os
import stat
import sys
from collections.abc import Iterable
from typing import Any

from treadle.errors import InputError

# A 1,000-app Marathon root group dump is 1.8 MB; real app definitions, Compose files and
# job outputs are kilobytes. Four times the largest real document, and still read fast.
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
# Real app definitions nest 11 levels, Marathon's own JSON Schema 14; 64 leaves room for
# any real document and keeps every parser and walker far from Python's recursion limit.
MAX_DEPTH = 64
# YAML aliases may repeat a part (Compose's `<<: *defaults`) but not explode it: twice the
# file limit, so that every document within the size limit passes without aliases.
MAX_EXPANDED_SIZE = 2 * MAX_DOCUMENT_BYTES
# Compose files and YAML app definitions hold a few thousand nodes; PyYAML builds about
# 200,000 a second, so that no YAML document takes more than half a second.
MAX_YAML_NODES = 100_000
# The longest expression in real pipelines is a filter with a join: about 100 characters.
MAX_EXPRESSION_CHARS = 1024
# Real expressions nest brackets 3 deep; jmespath's parser recurses per level.
MAX_EXPRESSION_NESTING = 16
# What the placeholders of one option or spec may render: Marathon keeps an app in one
# ZooKeeper node, at most 1 MB, so no real spec or option comes near.
MAX_RENDERED_SIZE = 1024 * 1024
# What an expression may build on its way: any selection of one document fits.
MAX_EVALUATION_SIZE = MAX_DOCUMENT_BYTES
# A filter over 10,000 apps takes about 55,000 steps; 250,000 take a quarter of a second.
MAX_EVALUATION_STEPS = 250_000
# A large spec holds dozens of placeholders; 10,000 render in about 40 ms.
MAX_PLACEHOLDERS = 10_000
# Sizes and CPUs beyond any cluster's: a typo or a runaway placeholder, refused before a
# provider is asked to make them.
MAX_INSTANCES = 100_000
MAX_CPUS = 1_000_000

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def mebibytes(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def read_document(path: str, what: str) -> bytes:
    """The bytes of a regular file, or of stdin for `-`, at most MAX_DOCUMENT_BYTES.

    A named pipe, a device (/dev/zero), a directory or a socket is refused before it is
    read: it could block forever or never end. The file is opened with O_NONBLOCK so that
    a pipe swapped in after the first look cannot hang the open either.
    """
    if path == "-":
        return _read_stdin(what)
    try:
        _refuse_unless_regular(os.stat(path).st_mode, path, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"{what} {path}: no such file") from None
    except OSError as e:
        raise InputError(f"{what} {path}: cannot read it ({e.strerror})") from None
    try:
        with os.fdopen(fd, "rb") as f:
            status = os.fstat(f.fileno())
            _refuse_unless_regular(status.st_mode, path, what)
            _within_limit(status.st_size, path, what)
            data = f.read(MAX_DOCUMENT_BYTES + 1)  # a file may grow after fstat
            _within_limit(len(data), path, what)
            return data
    except OSError as e:
        raise InputError(f"{what} {path}: cannot read it ({e.strerror})") from None


def _read_stdin(what: str) -> bytes:
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise InputError(f"{what} -: stdin cannot be read")
    try:
        data: bytes = stream.read(MAX_DOCUMENT_BYTES + 1)
    except (OSError, ValueError) as e:
        raise InputError(f"{what} -: cannot read stdin ({e})") from None
    _within_limit(len(data), "-", what)
    return data


def _refuse_unless_regular(mode: int, path: str, what: str) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    raise InputError(f"{what} {path}: is {kind}, not a regular file (give a file, or - for stdin)")


def _within_limit(size: int, path: str, what: str) -> None:
    if size > MAX_DOCUMENT_BYTES:
        raise InputError(f"{what} {path}: larger than the {mebibytes(MAX_DOCUMENT_BYTES)} limit")


def deeper_than(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than `limit` levels; stops at the first that
    does, without recursion."""
    if not isinstance(value, (list, dict)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (list, dict)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


class YamlTooLarge(Exception):
    """A YAML document over a limit, found while reading its events."""


def check_yaml_events(events: Iterable[Any]) -> None:
    """Refuse, from the parser's events alone, a YAML document that nests deeper than
    MAX_DEPTH, refers to itself through an alias, or holds more than MAX_YAML_NODES
    nodes or MAX_EXPANDED_SIZE once its aliases are expanded (the "billion laughs").

    The events come before any node is built, so nothing is expanded, and libyaml's
    composer (which recurses on the C stack) only sees documents within the depth limit.
    Size is nodes plus scalar characters; an alias counts what its anchor holds.
    """
    import yaml

    nodes = size = 0
    # One entry per open sequence or mapping: [nodes, size at its start, depth below it,
    # anchor]; and for each anchor, the nodes, size and depth of what it names.
    enclosing: list[list[Any]] = []
    anchors: dict[str, tuple[int, int, int]] = {}
    for event in events:
        depth = 0
        if isinstance(event, yaml.ScalarEvent):
            count, weight = 1, 1 + len(event.value)
            if event.anchor:
                anchors[event.anchor] = (count, weight, 0)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(enclosing) >= MAX_DEPTH:
                raise YamlTooLarge(f"nested deeper than {MAX_DEPTH} levels")
            enclosing.append([nodes, size, 0, event.anchor])
            count = weight = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            start_nodes, start_size, depth, anchor = enclosing.pop()
            depth += 1
            if anchor:
                anchors[anchor] = (nodes - start_nodes, size - start_size, depth)
            count = weight = 0
        elif isinstance(event, yaml.AliasEvent):
            if any(entry[3] == event.anchor for entry in enclosing):
                raise YamlTooLarge(f"the alias *{event.anchor} refers to itself")
            count, weight, depth = anchors.get(event.anchor or "", (0, 0, 0))
            if len(enclosing) + depth > MAX_DEPTH:
                raise YamlTooLarge(f"nested deeper than {MAX_DEPTH} levels through aliases")
        else:
            continue
        if enclosing:
            enclosing[-1][2] = max(enclosing[-1][2], depth)
        nodes += count
        size += weight
        if nodes > MAX_YAML_NODES:
            raise YamlTooLarge(f"holds more than {MAX_YAML_NODES:,} nodes with aliases expanded")
        if size > MAX_EXPANDED_SIZE:
            raise YamlTooLarge(f"expands through its aliases beyond {mebibytes(MAX_EXPANDED_SIZE)}")


class Exceeded(Exception):
    """An expression over a limit; the message says which, as in "builds more than 8 MiB"."""


_CONTAINERS = (list, dict)


class Meter:
    """What evaluating one expression has cost: steps of Python-level work (jmespath's
    visits, and the elements that measuring walks one by one) and the size of each value
    that is measured."""

    def __init__(self) -> None:
        self.steps = 0
        # The size of each list and object measured so far, which stays alive here so that
        # its id stays its own: a part shared by several values is walked once.
        self.known: dict[int, tuple[Any, int]] = {}

    def step(self, count: int = 1) -> None:
        self.steps += count
        if self.steps > MAX_EVALUATION_STEPS:
            raise Exceeded(f"takes more than {MAX_EVALUATION_STEPS:,} steps to evaluate")

    def size(self, value: Any, limit: int, verb: str) -> int:
        """About how many characters `value` takes as JSON (nodes plus string characters),
        counting a shared part each time it occurs; raises Exceeded ("{verb} more than
        ...") past `limit` without walking further, and without recursion."""
        if not isinstance(value, _CONTAINERS):
            return self._within(_scalar_size(value), limit, verb)
        stack = [value]
        opened: set[int] = set()
        while stack:
            node = stack[-1]
            if id(node) in self.known:
                stack.pop()
                continue
            self.step()
            children = list(node.values()) if isinstance(node, dict) else node
            size = 1 + _keys_size(node) if isinstance(node, dict) else 1
            kinds = set(map(type, children))
            if not any(issubclass(kind, _CONTAINERS) for kind in kinds):
                # Scalars only: summed at C speed, so no steps are counted.
                size += len(children) + _strings_size(children, kinds)
            else:
                self.step(len(children))
                pending = [
                    c for c in children if isinstance(c, _CONTAINERS) and id(c) not in self.known
                ]
                if pending:
                    if id(node) in opened:  # a list that holds itself has no end
                        raise Exceeded(f"{verb} a value that contains itself")
                    opened.add(id(node))
                    stack.extend(pending)
                    continue
                size += sum(
                    self.known[id(c)][1] if isinstance(c, _CONTAINERS) else _scalar_size(c)
                    for c in children
                )
            self.known[id(node)] = (node, self._within(size, limit, verb))
            stack.pop()
        return self.known[id(value)][1]

    @staticmethod
    def _within(size: int, limit: int, verb: str) -> int:
        if size > limit:
            raise Exceeded(f"{verb} more than {mebibytes(limit)}")
        return size


def _scalar_size(value: Any) -> int:
    return 1 + len(value) if isinstance(value, str) else 1


def _strings_size(values: Iterable[Any], kinds: set[type]) -> int:
    if kinds == {str}:
        return sum(map(len, values))
    return sum(len(v) for v in values if isinstance(v, str)) if str in kinds else 0


def _keys_size(mapping: dict[Any, Any]) -> int:
    return len(mapping) + _strings_size(mapping, set(map(type, mapping)))


def bracket_nesting(expression: str) -> int:
    """How deep brackets and parentheses nest in a JMESPath expression, outside quoted
    names and raw strings."""
    depth = deepest = 0
    quote = ""
    escaped = False
    for char in expression:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]}":
            depth -= 1
    return deepest


def check_plain(value: Any, what: str, at: str = "") -> None:
    """A definition's keys are text and its numbers finite, as every provider's JSON
    needs (YAML reads `1:` as a number key, `.nan` and `.inf` as numbers)."""
    where = f"{at}: " if at else ""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InputError(f"{what}: {where}the key {key!r} is not text (quote it)")
            check_plain(item, what, f"{at}.{key}" if at else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_plain(item, what, f"{at}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{what}: {where}{value} is not a number a cluster takes")


def check_instances(count: int | None, flag: str) -> int | None:
    if count is not None and count > MAX_INSTANCES:
        raise InputError(f"{flag} {count} is more than {MAX_INSTANCES:,} instances")
    return count
