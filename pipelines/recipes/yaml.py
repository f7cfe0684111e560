"""Safe YAML loading for recipes: plain data only, duplicate keys are errors, positions kept.

The C (or pure-Python) SafeLoader only *composes* the node tree; building Python values is
done here so that every problem can be reported with its JSON pointer and every key's
line/column is remembered (errors are sorted by position). Only the JSON-like core tags are
accepted: no ``!!python/...`` object tags, no ``!!set``/``!!binary``, no merge keys (``<<``).
Keys are always the key's text as written, so ``0:`` or ``yes:`` name an input ``"0"`` or
``"yes"`` instead of becoming an int or a bool.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

# libyaml parses ~10x faster; the SafeLoader fallback gives identical trees.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_TAG = "tag:yaml.org,2002:"
_SCALARS = {
    _TAG + "null": SafeConstructor.construct_yaml_null,
    _TAG + "bool": SafeConstructor.construct_yaml_bool,
    _TAG + "int": SafeConstructor.construct_yaml_int,
    _TAG + "float": SafeConstructor.construct_yaml_float,
    _TAG + "str": SafeConstructor.construct_yaml_str,
}
# An unquoted date is implicitly a timestamp in YAML 1.1; recipes want the text.
_AS_TEXT = {_TAG + "timestamp"}
# Aliases can expand exponentially ("billion laughs"); no recipe comes anywhere near this.
_MAX_NODES = 200_000
_MAX_DEPTH = 100


@dataclass
class YamlIssue:
    """A problem found while reading the YAML; ``pointer`` is None for syntax errors."""

    pointer: str | None
    line: int
    column: int
    message: str


def escape_pointer(key: str) -> str:
    """Escape one JSON-pointer reference token (RFC 6901)."""
    return key.replace("~", "~0").replace("/", "~1")


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_TAG) :] if tag.startswith(_TAG) else tag


class _Builder:
    def __init__(self) -> None:
        self.positions: dict[str, tuple[int, int]] = {"": (1, 1)}
        self.issues: list[YamlIssue] = []
        self.nodes = 0
        self.active: set[int] = set()  # collections being built: detects recursive aliases
        self._constructor = SafeConstructor()

    def issue(self, pointer: str, node, message: str) -> None:
        mark = node.start_mark
        self.issues.append(YamlIssue(pointer, mark.line + 1, mark.column + 1, message))

    def build(self, node, pointer: str):
        self.nodes += 1
        if self.nodes > _MAX_NODES:
            raise _TooLarge(node, f"document expands to more than {_MAX_NODES} nodes (alias bomb?)")
        if isinstance(node, ScalarNode):
            return self._scalar(node, pointer)
        if id(node) in self.active:
            raise _TooLarge(node, "recursive YAML alias (a node that contains itself)")
        if len(self.active) >= _MAX_DEPTH:
            raise _TooLarge(node, f"nesting deeper than {_MAX_DEPTH} levels")
        self.active.add(id(node))
        try:
            return self._collection(node, pointer)
        finally:
            self.active.discard(id(node))

    def _collection(self, node, pointer: str):
        if isinstance(node, MappingNode):
            return self._mapping(node, pointer)
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                self.issue(pointer, node, f"YAML tag '{_short_tag(node.tag)}' is not allowed")
            items = []
            for i, child in enumerate(node.value):
                child_pointer = f"{pointer}/{i}"
                mark = child.start_mark
                self.positions.setdefault(child_pointer, (mark.line + 1, mark.column + 1))
                items.append(self.build(child, child_pointer))
            return items
        raise TypeError(node)  # composer only makes scalars, sequences and mappings

    def _mapping(self, node: MappingNode, pointer: str) -> dict:
        if node.tag != _TAG + "map":
            self.issue(pointer, node, f"YAML tag '{_short_tag(node.tag)}' is not allowed")
        result: dict = {}
        first: dict[str, str] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                self.issue(pointer, key_node, "YAML merge keys ('<<') are not supported")
                continue
            if not isinstance(key_node, ScalarNode):
                self.issue(pointer, key_node, "mapping keys must be plain scalars")
                continue
            key = key_node.value
            child_pointer = f"{pointer}/{escape_pointer(key)}"
            line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key in result:
                message = (
                    f"duplicate key '{key}' at line {line}:{column} (first at line {first[key]})"
                )
                self.issue(child_pointer, key_node, message)
                continue
            first[key] = f"{line}:{column}"
            self.positions.setdefault(child_pointer, (line, column))
            result[key] = self.build(value_node, child_pointer)
        return result

    def _scalar(self, node: ScalarNode, pointer: str):
        construct = _SCALARS.get(node.tag)
        if construct is not None:
            return construct(self._constructor, node)
        if node.tag in _AS_TEXT:
            return node.value
        self.issue(pointer, node, f"YAML tag '{_short_tag(node.tag)}' is not allowed")
        return None


class _TooLarge(Exception):
    def __init__(self, node, message: str) -> None:
        super().__init__(message)
        self.node = node


def parse_yaml(text: str) -> tuple[object, dict[str, tuple[int, int]], list[YamlIssue]]:
    """Parse one YAML document into plain data.

    Returns ``(data, positions, issues)``: ``positions`` maps JSON pointers to (line, column)
    of their key (1-based); ``issues`` lists syntax errors, duplicate keys and forbidden tags.
    When ``issues`` is not empty, ``data`` must not be trusted.
    """
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        return None, {}, [YamlIssue(None, line, column, f"YAML syntax error: {problem}")]
    except yaml.YAMLError as exc:  # e.g. a reader error on control characters
        return None, {}, [YamlIssue(None, 1, 1, f"YAML error: {exc}".splitlines()[0])]
    if node is None:
        return None, {"": (1, 1)}, []
    builder = _Builder()
    try:
        data = builder.build(node, "")
    except _TooLarge as exc:
        mark = exc.node.start_mark
        return None, {}, [YamlIssue(None, mark.line + 1, mark.column + 1, str(exc))]
    return data, builder.positions, builder.issues
