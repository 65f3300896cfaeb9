"""Safe YAML loading that remembers where every key and value came from.

PyYAML's SafeLoader composes the node tree (safe: no Python tags are ever constructed); we then
build plain dicts and lists ourselves so that each path gets its line and column, and so that a
duplicate key is an error instead of PyYAML's silent overwrite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from thkit.core.errors import Problem, SpecError

SpecPath = tuple[str | int, ...]
# libyaml's parser when PyYAML was built with it (about 10x faster); both only compose plain nodes.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Positions:
    """Line/column (1-based) of each value and each mapping key, by path from the document root."""

    source: str
    values: dict[SpecPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[SpecPath, tuple[int, int]] = field(default_factory=dict)
    origins: dict[SpecPath, str] = field(default_factory=dict)  # paths set by `--set`, with its text

    def locate(self, path: SpecPath, *, key: bool = False) -> tuple[str, int | None, int | None]:
        """Position of `path`, or of its nearest ancestor that has one."""
        table = self.keys if key else self.values
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            if prefix in self.origins:
                return (f"--set {self.origins[prefix]}", None, None)
            if prefix in table:
                return (self.source, *table[prefix])
            if prefix in self.values:
                return (self.source, *self.values[prefix])
        return (self.source, None, None)

    def problem(self, path: SpecPath, message: str, *, key: bool = False) -> Problem:
        source, line, col = self.locate(path, key=key)
        return Problem(message=message, path=dotted(path), source=source, line=line, col=col)


def dotted(path: SpecPath) -> str:
    return ".".join(str(part) for part in path)


def read_yaml_file(path: str | Path) -> tuple[Any, Positions]:
    """Read a YAML file, rejecting anything that is not UTF-8 text."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise SpecError([Problem(f"file not found: {source}", source=source)]) from None
    except OSError as error:
        raise SpecError([Problem(f"cannot read file: {error.strerror}", source=source)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        col = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        message = f"not UTF-8 text (byte 0x{raw[error.start]:02x}); save the file as UTF-8"
        raise SpecError([Problem(message, source=source, line=line, col=col)]) from None
    return load_yaml(text, source)


def load_yaml(text: str, source: str) -> tuple[Any, Positions]:
    """Parse one YAML document into plain Python values plus their positions."""
    positions = Positions(source)
    try:
        nodes = list(yaml.compose_all(text, Loader=_LOADER))
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        reason = error.problem or str(error)
        problem = Problem(f"YAML syntax error: {reason}", source=source, line=line, col=col)
        raise SpecError([problem]) from None
    except yaml.YAMLError as error:
        raise SpecError([Problem(f"YAML error: {error}", source=source)]) from None
    if not nodes:
        raise SpecError([Problem("the file is empty; a spec starts with 'thkit: 1'", source=source)])
    if len(nodes) > 1:
        raise SpecError([Problem(f"expected one YAML document, found {len(nodes)} (remove the '---' separators)", source=source)])
    problems: list[Problem] = []
    value = _build(nodes[0], (), positions, problems)
    if problems:
        raise SpecError(problems)
    return value, positions


_PLAIN_TAGS = {"map", "seq", "str", "int", "float", "bool", "null"}


def _build(node: yaml.Node, path: SpecPath, positions: Positions, problems: list[Problem]) -> Any:
    positions.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    if tag.removeprefix("!!") not in _PLAIN_TAGS:
        # Only plain values are allowed: a tag such as !!python/object must never reach a constructor.
        problems.append(positions.problem(path, f"unsupported YAML tag '{tag}'; specs hold plain values only"))
        return None
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build_key(key_node, path, positions, problems)
            if key is None:
                continue
            child = (*path, key)
            if key in result:
                first_line = positions.keys[child][0]
                problems.append(
                    Problem(
                        f"duplicate key '{key}' (first defined on line {first_line})",
                        path=dotted(child),
                        source=positions.source,
                        line=key_node.start_mark.line + 1,
                        col=key_node.start_mark.column + 1,
                    )
                )
                continue
            positions.keys[child] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _build(value_node, child, positions, problems)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, index), positions, problems) for index, item in enumerate(node.value)]
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except yaml.constructor.ConstructorError as error:
        problems.append(positions.problem(path, f"unreadable YAML value: {error.problem}"))
        return None


def _build_key(key_node: yaml.Node, path: SpecPath, positions: Positions, problems: list[Problem]) -> str | None:
    if not isinstance(key_node, yaml.ScalarNode):
        line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
        problems.append(Problem("mapping keys must be plain names", dotted(path), positions.source, line, col))
        return None
    key = yaml.constructor.SafeConstructor().construct_object(key_node)
    return str(key)
