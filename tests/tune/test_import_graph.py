"""The import graph of rung.tune and rung.export, read from the sources: every import counts,
function-level ones too (a loop hidden in a function still makes a module depend on the one
that imports it), and export, a floor below tune, imports nothing from it."""

from __future__ import annotations

import ast
from pathlib import Path

import rung

SRC = Path(rung.__file__).resolve().parent.parent
CHECKED = ("rung.tune", "rung.export")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in (SRC / "rung").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _module_of(name: str) -> str | None:
    """The module (or package) an imported name lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path) -> set[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str | None] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(_module_of(a.name) for a in node.names if a.name.startswith("rung"))
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                name = f"{base}.{name}".rstrip(".")
            if name.startswith("rung"):
                for alias in node.names:
                    sub = f"{name}.{alias.name}"
                    found.add(sub if sub in MODULES else _module_of(name))
    return {m for m in found if m is not None and m != module}


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _path_back(start: str) -> list[str] | None:
    """An import chain from ``start`` back to itself, if there is one."""
    seen: set[str] = set()
    todo: list[list[str]] = [[start, nxt] for nxt in sorted(GRAPH[start])]
    while todo:
        chain = todo.pop()
        if chain[-1] == start:
            return chain
        if chain[-1] in seen:
            continue
        seen.add(chain[-1])
        todo.extend([*chain, nxt] for nxt in sorted(GRAPH.get(chain[-1], ())))
    return None


def test_the_graph_is_read() -> None:
    assert "rung.tune.encoder.run" in GRAPH["rung.tune.encoder"]
    assert "rung.export.folder" in GRAPH["rung.tune.encoder.run"]
    # a function-level import is an edge too
    assert "rung.catalog.gguf_meta" in GRAPH["rung.export.gguf"]


def test_no_import_loop_through_tune_or_export() -> None:
    loops = [
        " -> ".join(chain)
        for module in sorted(GRAPH)
        if module.startswith(CHECKED) and (chain := _path_back(module)) is not None
    ]
    assert not loops, "\n".join(loops)


def test_export_imports_nothing_from_tune() -> None:
    upward = {
        module: sorted(t for t in targets if t.startswith("rung.tune"))
        for module, targets in GRAPH.items()
        if module.startswith("rung.export")
    }
    assert not any(upward.values()), upward
