"""The shape of the code: imports point downward and never loop.

Read from the source (module-level imports only: an import inside a function runs on first
use and cannot loop at import time), so this holds for every module, imported in any order.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rung

ROOT = Path(rung.__file__).parent


def _module_imports() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found: set[str] = set()
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rung"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("rung"))
        graph[name] = found
    # "from rung.models import registry" names a module; "from rung.models import Model" does not
    return {m: {i for i in imports if i in graph and i != m} for m, imports in graph.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            # a package's __init__ importing its own submodules is how packages export names
            if n.startswith(m + "."):
                continue
            if state.get(n) == 1:
                return [*stack[stack.index(n) :], n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_loops() -> None:
    assert _cycle(_module_imports()) is None


def test_the_bottom_floors_import_nothing_above_them() -> None:
    above = (
        "rung.catalog",
        "rung.compare",
        "rung.advise",
        "rung.tune",
        "rung.route",
        "rung.serve",
        "rung.cli",
        "rung.report",
        "rung.rag",
        "rung.flows",
        "rung.tasks",
    )
    for module, imports in _module_imports().items():
        if module.startswith(("rung.models", "rung.formats")):
            assert not [i for i in imports if i.startswith(above)], module
        if module.startswith("rung.formats"):
            assert imports <= {"rung.errors"}, module


def test_costs_live_below_compare() -> None:
    for module, imports in _module_imports().items():
        if module != "rung.compare.cost":
            assert "rung.compare.cost" not in imports, module


def test_a_loop_is_found() -> None:
    """The check itself: a loop through three modules is reported, a package exporting its
    own submodules is not."""
    graph = {"a": {"a.b"}, "a.b": {"c"}, "c": {"d"}, "d": {"a.b"}}
    assert _cycle(graph) == ["a.b", "c", "d", "a.b"]
    assert _cycle({"a": {"a.b"}, "a.b": set()}) is None
    assert sum(len(v) for v in _module_imports().values()) > 300  # the graph was read
