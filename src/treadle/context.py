"""Context files and `{{ JMESPath }}` placeholders.

`--context FILE` merges a JSON or YAML object at the root (later files win);
`--context NAME=FILE` places it under NAME. Any option value and any string inside a spec
file may hold placeholders evaluated against the merged context. A value that is exactly
one placeholder keeps the JSON type of what it matched.

Files may be hostile (huge, deep, self-referencing); `treadle.limits` holds them to
limits that no real input comes near, and refuses the rest with one line.
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
    import yaml

PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


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
        """Fill every placeholder in a string, or in the strings of a list or mapping."""
        if isinstance(value, str):
            return self._render_string(value, where)
        if isinstance(value, list):
            return [self.render(item, where) for item in value]
        if isinstance(value, dict):
            return {key: self.render(item, where) for key, item in value.items()}
        return value

    def _render_string(self, text: str, where: str) -> Any:
        if "{{" not in text:
            return text
        found = list(PLACEHOLDER.finditer(text))
        if len(found) == 1 and found[0].span() == (0, len(text)):
            return self._evaluate(found[0].group(1), where)
        return PLACEHOLDER.sub(lambda m: _as_text(self._evaluate(m.group(1), where)), text)

    def _evaluate(self, expression: str, where: str) -> Any:
        import jmespath
        from jmespath.exceptions import JMESPathError

        expression = expression.strip()
        at = f" in {where}" if where else ""
        if not expression:
            raise InputError(f"empty placeholder {{{{ }}}}{at}")
        try:
            found = jmespath.search(expression, self.data)
        except JMESPathError as e:
            detail = str(e).splitlines()[0]
            raise InputError(f"invalid expression {{{{ {expression} }}}}{at}: {detail}") from None
        if found is None:
            files = ", ".join(self.sources) if self.sources else "no --context given"
            raise InputError(f"{{{{ {expression} }}}}{at} matched nothing in the context ({files})")
        return found


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
