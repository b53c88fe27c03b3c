"""The house's layers, checked on every import in edge/ (function-local and type-only ones included).

Each unit (a sub-package or a top-level module of edge/) may import only the units listed for it, and
no two modules import each other, directly or round a longer cycle. `make lint` runs this file.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "edge"
BASE = {"errors", "types", "fileio"}
# unit -> the units it may import (besides itself), lowest layers first
ALLOWED: Dict[str, Set[str]] = {
    "errors": set(), "types": set(), "fileio": set(),
    "assets": BASE,
    "model": BASE,
    "runtime": BASE,
    "io": BASE | {"assets", "model"},
    "detectors": BASE | {"assets", "model", "runtime"},
    "config": BASE | {"runtime", "io"},
    "pipeline": BASE | {"model", "runtime", "io", "detectors", "config"},
    "compile": BASE | {"model", "runtime", "pipeline", "config"},
    "setup_models": BASE | {"assets", "model", "detectors"},
    "app": BASE | {"assets", "model", "runtime", "io", "detectors", "config", "pipeline", "compile", "setup_models"},
    "eval": BASE | {"assets", "model", "runtime", "io", "detectors", "config", "pipeline", "app"},
    "train": BASE | {"assets", "model", "runtime", "io", "detectors", "config", "pipeline", "eval"},
}
# what each layer rule is for, said when it breaks
WHY = {"runtime": "loading an engine must not need the build tooling, the pipeline or the app",
       "pipeline": "the per-frame pipeline never imports the engine-build tooling or the app",
       "eval": "evaluation measures the product; training depends on it, never the reverse"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def imported_modules(path: Path, modules: Set[str]) -> Set[str]:
    """Every edge module `path` imports anywhere in its body, resolved to a module file that exists."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name.startswith("edge.") and name in modules:
                found.add(name)
    return found


def import_graph() -> Dict[str, Set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    graph = {name: imported_modules(path, modules) - {name} for name, path in paths.items()}
    for name in graph:  # `from edge.x import y` names the package edge.x too: a package's __init__ is not an edge
        graph[name] = {m for m in graph[name] if not (paths[m].name == "__init__.py" and
                                                      any(o.startswith(m + ".") for o in graph[name]))}
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def layer_breaches(graph: Dict[str, Set[str]]) -> List[Tuple[str, str]]:
    breaches = []
    for module, imports in sorted(graph.items()):
        unit = unit_of(module)
        if not unit:
            continue
        for target in sorted(imports):
            other = unit_of(target)
            if other and other != unit and other not in ALLOWED[unit]:
                breaches.append((module, target))
    return breaches


def test_every_unit_has_a_rule():
    units = {unit_of(name) for name in import_graph()} - {""}
    assert units == set(ALLOWED), f"give each unit of edge/ its allowed imports in ALLOWED: {units ^ set(ALLOWED)}"


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_each_unit_imports_only_the_layers_below_it():
    breaches = layer_breaches(import_graph())
    assert not breaches, "\n".join(f"{m} imports {t}" + (f" ({WHY[unit_of(m)]})" if unit_of(m) in WHY else "")
                                   for m, t in breaches)


def test_the_checks_see_function_local_imports_and_cycles(tmp_path, monkeypatch):
    """The walker is only worth its rules if it finds an import hidden in a function and a two-module cycle."""
    pkg = tmp_path / "edge"
    for unit in ("runtime", "compile"):
        (pkg / unit).mkdir(parents=True)
        (pkg / unit / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "runtime" / "engine.py").write_text("def load():\n    from edge.compile.builder import build\n")
    (pkg / "compile" / "builder.py").write_text("from edge.runtime import engine\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", pkg)
    graph = import_graph()
    assert cycles(graph) == [["edge.compile.builder", "edge.runtime.engine"]]
    assert layer_breaches(graph) == [("edge.runtime.engine", "edge.compile.builder")]


if __name__ == "__main__":
    raise SystemExit(pytest.main([__file__, "-q"]))
