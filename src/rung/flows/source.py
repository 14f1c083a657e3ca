"""Reading a flow file: YAML as plain data (``yaml.safe_load``'s types) with the line of every
key and item, so that a problem found later names ``file:line``.

The line map is built from the composed node tree (``yaml.compose``): a path of keys and list
indices (``("steps", 2, "prompt")``) to the 1-based line where its value starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from rung.errors import SpecError

__all__ = ["FlowSource", "Loc", "read_source"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FlowSource:
    """A flow file as read: its data, where each value is, and its content hash."""

    path: Path
    data: Any
    lines: dict[Loc, int]
    #: sha256 of the file's bytes, the flow's version
    digest: str

    @property
    def version(self) -> str:
        return self.digest[:12]

    def line(self, loc: Sequence[str | int]) -> int | None:
        """The line of ``loc``, or of the nearest value above it that has one."""
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), None)

    def error(self, loc: Sequence[str | int], message: str) -> SpecError:
        line = self.line(loc)
        where = f"{self.path}:{line}" if line else str(self.path)
        return SpecError(f"{where}: {message}")


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.start_mark)
            # the key's line: a nested mapping's value starts on the line after its key
            lines[(*loc, name)] = key.start_mark.line + 1
            _walk(value, (*loc, name), lines)
            lines[(*loc, name)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines)


def read_source(path: Path) -> FlowSource:
    if not path.is_file():
        raise SpecError(f"flow file not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a UTF-8 text file") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SpecError(f"{where}: malformed YAML: {getattr(e, 'problem', e)}") from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _walk(node, (), lines)
    if not isinstance(data, dict):
        raise SpecError(f"{path}:1: a flow file is a YAML mapping with name, inputs and steps")
    return FlowSource(path, data, lines, hashlib.sha256(raw).hexdigest())
