"""Modules talk through public names (STYLE rule 14), checked on the source of every module of
``evo_core``, ``ledger``, ``projections`` and ``adapters``:

- no import cycle: every import counts, a function's lazy one and one under ``TYPE_CHECKING``
  too (a lazy import back is still a cycle: the two modules cannot be read, tested or moved
  apart);
- no ``from m import _name``: a private name stays in its module.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("evo_core", "ledger", "projections", "adapters")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, source: str, known: set[str], is_package: bool = False) -> tuple[set[str], list[str]]:
    """The modules of ``known`` that ``module`` imports anywhere in ``source``, and the private
    names it imports from other modules."""
    edges: set[str] = set()
    private: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            edges |= {alias.name for alias in node.names if alias.name in known}
        elif isinstance(node, ast.ImportFrom):
            source_module = _absolute(module, node, is_package)
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    private.append(f"{module} imports {alias.name} from {source_module}")
                full = f"{source_module}.{alias.name}"
                if full in known:
                    edges.add(full)
                elif source_module in known:
                    edges.add(source_module)
    edges.discard(module)
    return edges, private


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) through each strongly connected component of ``graph``
    that has one (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, ()):
                    components.append(component)
    return [_path_within(c, graph) for c in components]


def _path_within(component: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A cycle through the first member of ``component``: a shortest path back to it."""
    start = min(component)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ()) & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in came_from:
                    came_from[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")


def _scan() -> tuple[dict[str, set[str]], list[str]]:
    modules = _modules()
    graph, private = {}, []
    for name, path in modules.items():
        graph[name], found = imports(name, path.read_text(), set(modules), path.name == "__init__.py")
        private += found
    return graph, private


def test_no_import_cycles() -> None:
    graph, _ = _scan()
    assert len(graph) > 50
    found = [" -> ".join(cycle) for cycle in cycles(graph)]
    assert not found, "import cycles (move what both sides need into a module both import):\n" + "\n".join(found)


def test_no_private_name_is_imported_from_another_module() -> None:
    _, private = _scan()
    assert not private, "private names used across modules (make them public or keep them home):\n" + "\n".join(private)


def test_the_checks_see_lazy_imports_and_cycles() -> None:
    source = "def f():\n    from pkg.b import helper, _secret\n"
    edges, private = imports("pkg.a", source, {"pkg.a", "pkg.b"})
    assert edges == {"pkg.b"}
    assert private == ["pkg.a imports _secret from pkg.b"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
