"""The package's import graph: no cycles, and dependencies point one way (DESIGN.md):
cli -> engine -> trackers -> models -> ops; data and eval import no model code; models never
import data or trackers. Every import counts, also those inside functions."""
import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "trackformers"
LAYERS = {  # package -> packages it may not import
    "models": {"data", "trackers", "engine", "eval", "convert", "cli"},
    "ops": {"models", "data", "trackers", "engine", "eval", "convert", "cli"},
    "data": {"models", "trackers", "engine", "convert", "cli"},
    "eval": {"models", "trackers", "engine", "convert", "cli", "ops"},
    "trackers": {"engine", "convert", "cli"},
}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in SRC.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from pkg import mod` depends on pkg.mod; `from mod import name` on mod
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                           for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph = _graph()
    assert len(graph) > 50
    assert _cycles(graph) == []


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_imports_point_one_way(package):
    bad = []
    for module, deps in _graph().items():
        if module.split(".")[1:2] == [package]:
            bad += [f"{module} -> {d}" for d in deps if d.split(".")[1] in LAYERS[package]]
    assert bad == []


def test_no_source_file_over_500_lines():
    long = {str(p.relative_to(SRC)): n for p in SRC.rglob("*.py") if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}
