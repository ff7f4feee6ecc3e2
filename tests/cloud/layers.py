"""Reads a package's imports (AST, every import statement, those inside functions too) and lists
what breaks the cloud's floors: each rule says which floors a floor may not import, and no import
cycle is allowed anywhere inside the package."""

from __future__ import annotations

import ast
from pathlib import Path

# floor -> floors it must not import (a floor is the first name under the package)
FORBIDDEN: dict[str, set[str]] = {
    "services": {"http", "web", "mqtt", "cli"},
    "store": {"services", "http", "web", "mqtt", "cli"},
    "web": {"http", "mqtt", "cli"},
    "mqtt": {"http", "web", "cli"},
    "http": {"mqtt", "cli"},
    "settings": {"services", "store", "http", "web", "mqtt", "cli"},
    "errors": {"services", "store", "http", "web", "mqtt", "cli"},
}
# packages of other tiers that the cloud must never import: they meet only through protocol/
OTHER_TIERS = {"sim", "gateway", "firmware", "tools", "mcode", "tests", "benchmarks"}


def modules(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under root/package."""
    out = {}
    for f in sorted((root / package).rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = f
    return out


def imports(f: Path, known: set[str]) -> set[str]:
    """Every module `f` imports: `from a.b import c` is a.b.c when that is a module, else a.b."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(f.read_text(), str(f))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
    return out


def floor(module: str, package: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == package else ""


def violations(root: Path, package: str = "cloud") -> list[str]:
    mods = modules(root, package)
    graph = {m: {i for i in imports(f, set(mods)) if i in mods or i.split(".")[0] != package}
             for m, f in mods.items()}
    found = []
    for m, deps in sorted(graph.items()):
        for d in sorted(deps):
            top = d.split(".")[0]
            if top in OTHER_TIERS:
                found.append(f"{m} imports {d}: {package}/ meets other tiers only through protocol/")
            elif top == package and floor(d, package) in FORBIDDEN.get(floor(m, package), set()):
                found.append(f"{m} imports {d}: {floor(m, package)} may not import {floor(d, package)}")
    found += [f"import cycle: {' -> '.join(c)}" for c in cycles({m: {d for d in ds if d in mods}
                                                               for m, ds in graph.items()})]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path back to its start) per strongly connected component that has one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan; the graphs are a few hundred nodes, recursion is fine
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(_path(graph, set(comp), min(comp)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _path(graph: dict[str, set[str]], comp: set[str], start: str) -> list[str]:
    """A cycle through `start` inside its component (breadth-first, so the shortest)."""
    prev: dict[str, str] = {}
    todo = [start]
    while todo:
        v = todo.pop(0)
        for w in sorted(graph.get(v, ()) & comp):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(prev[path[-1]])
                return [*reversed(path), start]
            if w not in prev:
                prev[w] = v
                todo.append(w)
    return [start, start]
