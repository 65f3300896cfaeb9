"""`--set path=value`: override any value of a loaded spec from the command line."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml

from thkit.core.errors import Problem, SpecError
from thkit.core.yamlpos import Positions, SpecPath


def apply_overrides(data: Any, positions: Positions, assignments: Iterable[str]) -> None:
    """Set each `a.b.c=value` in place; values are parsed as YAML scalars (safely).

    Missing mappings along the path are created; list items are addressed by index
    (`train.stages.0.steps=10`).
    """
    problems = []
    for text in assignments:
        try:
            _apply(data, positions, text)
        except ValueError as error:
            problems.append(Problem(str(error), source=f"--set {text}"))
    if problems:
        raise SpecError(problems)


def _apply(data: Any, positions: Positions, text: str) -> None:
    key, sep, raw_value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError("expected PATH=VALUE, e.g. nodes.fuse.params.dim=128")
    try:
        value = yaml.safe_load(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError:
        value = raw_value
    parts = key.strip().split(".")
    target = data
    path: SpecPath = ()
    for part in parts[:-1]:
        created = isinstance(target, dict) and part not in target
        target, step = _child(target, part, path, create=True)
        path = (*path, step)
        if created:
            positions.origins[path] = text
    last = parts[-1]
    if isinstance(target, list):
        index = _index(target, last, path)
        target[index] = value
        path = (*path, index)
    elif isinstance(target, dict):
        target[last] = value
        path = (*path, last)
    else:
        raise ValueError(f"'{'.'.join(str(p) for p in path)}' is a value, not a mapping or list")
    positions.origins[path] = text


def _child(container: Any, part: str, path: SpecPath, *, create: bool) -> tuple[Any, str | int]:
    if isinstance(container, dict):
        if part not in container and create:
            container[part] = {}
        return container[part], part
    if isinstance(container, list):
        index = _index(container, part, path)
        return container[index], index
    raise ValueError(f"'{'.'.join(str(p) for p in path)}' is a value, not a mapping or list")


def _index(items: list, part: str, path: SpecPath) -> int:
    where = ".".join(str(p) for p in path)
    try:
        index = int(part)
    except ValueError:
        raise ValueError(f"'{where}' is a list: address its items by number, not '{part}'") from None
    if not -len(items) <= index < len(items):
        raise ValueError(f"'{where}' has {len(items)} items; index {index} is out of range")
    return index
