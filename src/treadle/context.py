"""Context files and `{{ JMESPath }}` placeholders.

`--context FILE` merges a JSON or YAML object at the root (later files win);
`--context NAME=FILE` places it under NAME. Any option value and any string inside a spec
file may hold placeholders evaluated against the merged context. A value that is exactly
one placeholder keeps the JSON type of what it matched.

Files and expressions may be hostile (huge, deep, self-referencing); `treadle.limits`
holds them to limits that no real input comes near, and refuses the rest with one line.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from treadle import limits
from treadle.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Callable

    import yaml
    from jmespath.visitor import TreeInterpreter, _TreeNode

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Expressions quoted in messages are cut to this many characters.
_SHOWN_CHARS = 60


def load_document(path: str, what: str) -> Any:
    """A JSON or YAML file (`-`: stdin), with an input error that names the file and the
    line, or the limit it exceeds: regular files only, at most
    `limits.MAX_DOCUMENT_BYTES` (8 MiB), nesting at most `limits.MAX_DEPTH` (64) levels;
    YAML at most `limits.MAX_YAML_NODES` nodes and `limits.MAX_EXPANDED_SIZE` once its
    aliases are expanded, and only values JSON has."""
    raw = limits.read_document(path, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise InputError(f"{what} {path}: the file is empty")
    if text.lstrip().startswith(("{", "[")):
        return _parse_json(text, path, what)
    return _parse_yaml(text, path, what)


def _parse_json(text: str, path: str, what: str) -> Any:
    too_deep = InputError(f"{what} {path}: nested deeper than {limits.MAX_DEPTH} levels")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{what} {path}: invalid JSON at line {e.lineno}: {e.msg}") from None
    except RecursionError:
        raise too_deep from None
    except ValueError:  # beyond the 4,300 digits Python converts
        raise InputError(f"{what} {path}: invalid JSON: an integer too long to convert") from None
    if limits.deeper_than(document, limits.MAX_DEPTH):
        raise too_deep
    return document


def _parse_yaml(text: str, path: str, what: str) -> Any:
    import yaml

    loader = _yaml_loader()
    try:
        # First the events alone, so that nothing deep or exploding reaches the composer.
        limits.check_yaml_events(yaml.parse(text, Loader=loader))
        return yaml.load(text, Loader=loader)
    except limits.YamlTooLarge as e:
        raise InputError(f"{what} {path}: {e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "cannot be parsed"
        raise InputError(f"{what} {path}: invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise InputError(f"{what} {path}: nested deeper than {limits.MAX_DEPTH} levels") from None


_YAML_TAG = "tag:yaml.org,2002:"


@functools.cache
def _yaml_loader() -> type[yaml.SafeLoader]:
    """libyaml's safe loader where available, building only what JSON can say: a date
    stays the text it was written as, binary data and sets are refused."""
    import yaml

    base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class JsonLoader(base):  # type: ignore[valid-type,misc]
        pass

    def written(loader: yaml.SafeLoader, node: yaml.Node) -> str:
        return str(node.value)

    def integer(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
        try:
            value: int = loader.construct_yaml_int(node)
            str(value)  # JSON tools cannot handle integers beyond Python's 4,300 digits
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, "an integer too long to convert", node.start_mark
            ) from None
        return value

    def refused(loader: yaml.SafeLoader, node: yaml.Node) -> None:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"{node.tag.replace(_YAML_TAG, '!!')} has no JSON equivalent",
            node.start_mark,
        )

    JsonLoader.add_constructor(_YAML_TAG + "timestamp", written)
    JsonLoader.add_constructor(_YAML_TAG + "int", integer)
    JsonLoader.add_constructor(_YAML_TAG + "binary", refused)
    JsonLoader.add_constructor(_YAML_TAG + "set", refused)
    return JsonLoader


@dataclass
class Context:
    data: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, specs: list[str] | None) -> Context:
        context = cls()
        for spec in specs or []:
            name, sep, path = spec.partition("=")
            if not sep or not _NAME.fullmatch(name):
                name, path = "", spec
            document = load_document(path, "context file")
            if not isinstance(document, dict):
                raise InputError(
                    f"context file {path}: expected an object at the top, "
                    f"found {type(document).__name__}"
                )
            if name:
                context.data[name] = document
            else:
                context.data.update(document)
            context.sources.append(path)
        return context

    def render(self, value: Any, where: str = "") -> Any:
        """Fill every placeholder in a string, or in the strings of a list or mapping.
        Together the placeholders of one call render at most `limits.MAX_RENDERED_SIZE`."""
        return self._render(value, where, _Budget())

    def text(self, value: Any, where: str = "") -> Any:
        """`render` for an option that takes text (a name, a URL, a duration, a number
        as written): a placeholder that gives a number stands for its text, one that
        gives a list, an object, true, false or null is an InputError naming the option."""
        return _texts(self.render(value, where), value, where)

    def _render(self, value: Any, where: str, budget: _Budget) -> Any:
        if isinstance(value, str):
            return self._render_string(value, where, budget)
        if isinstance(value, list):
            return [self._render(item, where, budget) for item in value]
        if isinstance(value, dict):
            return {key: self._render(item, where, budget) for key, item in value.items()}
        return value

    def _render_string(self, text: str, where: str, budget: _Budget) -> Any:
        # Each `{{` looks for the first `}}` after it; scanning with find stays linear
        # where a lazy regular expression would rescan the rest of the text at every `{{`.
        start = text.find("{{")
        if start < 0:
            return text
        end = text.find("}}", start + 2)
        if start == 0 and end == len(text) - 2:
            return self._evaluate(text[2:end], where, budget)
        pieces = []
        done = 0
        while start >= 0 and end >= 0:
            expression = text[start + 2 : end]
            found = self._evaluate(expression, where, budget)
            pieces += [text[done:start], _as_text(found, expression, where)]
            done = end + 2
            start = text.find("{{", done)
            end = text.find("}}", start + 2) if start >= 0 else -1
        pieces.append(text[done:])
        return "".join(pieces)

    def search(self, text: str, where: str = "") -> Any:
        """What `{{ EXPRESSION }}` (or a bare expression) finds in the context, None when it
        matches nothing: for a check of the context, where nothing is an answer too."""
        expression = text.strip()
        if expression.startswith("{{") and expression.endswith("}}"):
            expression = expression[2:-2]
        return self._evaluate(expression, where, _Budget(), missing_ok=True)

    def _evaluate(
        self, expression: str, where: str, budget: _Budget, missing_ok: bool = False
    ) -> Any:
        import jmespath
        from jmespath.exceptions import JMESPathError

        expression = expression.strip()
        at = f" in {where}" if where else ""
        if not expression:
            raise InputError(f"empty placeholder {{{{ }}}}{at}")
        shown = f"{{{{ {_shorten(expression)} }}}}{at}"
        budget.placeholders += 1
        if budget.placeholders > limits.MAX_PLACEHOLDERS:
            raise InputError(
                f"{where or 'the value'} holds more than {limits.MAX_PLACEHOLDERS:,} "
                "placeholders: use fewer"
            )
        if len(expression) > limits.MAX_EXPRESSION_CHARS:
            raise InputError(
                f"{shown}: the expression is {len(expression)} characters long, "
                f"more than the {limits.MAX_EXPRESSION_CHARS} allowed"
            )
        nesting = limits.bracket_nesting(expression)
        if nesting > limits.MAX_EXPRESSION_NESTING:
            raise InputError(
                f"{shown}: brackets nest {nesting} deep, "
                f"more than the {limits.MAX_EXPRESSION_NESTING} allowed"
            )
        meter = limits.Meter()
        try:
            parsed = jmespath.compile(expression).parsed
            found = _bounded_interpreter()(meter).visit(parsed, self.data)
            size = meter.size(found, limits.MAX_RENDERED_SIZE, "renders")
        except JMESPathError as e:
            detail = str(e).splitlines()[0]
            raise InputError(f"invalid expression {shown}: {detail}") from None
        except RecursionError:
            raise InputError(f"invalid expression {shown}: too deeply nested") from None
        except limits.Exceeded as e:
            raise InputError(f"{shown} {e}: select less") from None
        except (ValueError, TypeError, ArithmeticError) as e:
            raise InputError(f"invalid expression {shown}: {e}") from None
        if found is None and not missing_ok:
            files = ", ".join(self.sources) if self.sources else "no --context given"
            raise InputError(f"{shown} matched nothing in the context ({files})")
        budget.spent += size
        if budget.spent > limits.MAX_RENDERED_SIZE:
            raise InputError(
                f"{shown} renders more than {limits.mebibytes(limits.MAX_RENDERED_SIZE)} "
                "with the placeholders before it: select less"
            )
        return found


@dataclass
class _Budget:
    """What the placeholders of one render call have produced so far."""

    spent: int = 0
    placeholders: int = 0


# The expressions whose value can be bigger than their inputs: a multi-select can repeat
# a value (`[@, @]`), and each pipe repeats the doubling; a flatten, function or
# projection can copy what such a value holds.
_GROWING = frozenset(
    {
        "multi_select_list",
        "multi_select_dict",
        "flatten",
        "function_expression",
        "projection",
        "value_projection",
        "filter_projection",
    }
)


@functools.cache
def _bounded_interpreter() -> Callable[[limits.Meter], TreeInterpreter]:
    """jmespath's interpreter, counting its steps and measuring every value that can grow,
    so that no expression runs longer than `limits.MAX_EVALUATION_STEPS` or builds (or
    to_string serialises) more than `limits.MAX_EVALUATION_SIZE`."""
    from jmespath.visitor import TreeInterpreter

    class Bounded(TreeInterpreter):
        def __init__(self, meter: limits.Meter) -> None:
            super().__init__()
            self.meter = meter

        def visit(self, node: _TreeNode, *args: Any, **kwargs: Any) -> Any:
            self.meter.step()
            value = super().visit(node, *args, **kwargs)
            if node["type"] in _GROWING:
                self.meter.size(value, limits.MAX_EVALUATION_SIZE, "builds")
            return value

    return Bounded


def _shorten(expression: str) -> str:
    if len(expression) <= _SHOWN_CHARS:
        return expression
    return expression[: _SHOWN_CHARS - 3] + "..."


def _texts(rendered: Any, given: Any, where: str) -> Any:
    if isinstance(given, list) and isinstance(rendered, list):
        return [_texts(r, g, where) for r, g in zip(rendered, given, strict=True)]
    if not isinstance(given, str) or isinstance(rendered, str):
        return rendered
    if isinstance(rendered, int | float) and not isinstance(rendered, bool):
        return _as_text(rendered, given, where)
    kind = {list: "a list", dict: "an object", bool: "true or false"}.get(type(rendered), "null")
    raise InputError(f"{where} {_shorten(given)}: it gives {kind}, where text is expected")


def _as_text(value: Any, expression: str, where: str) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, separators=(",", ":"))
    except ValueError:  # a sum beyond the 4,300 digits Python writes out
        at = f" in {where}" if where else ""
        shown = _shorten(expression.strip())
        raise InputError(f"{{{{ {shown} }}}}{at}: a number too long to write out") from None
