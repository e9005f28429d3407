"""Projections are pure (STYLE rule 1): they import only the stdlib helpers they need, msgspec
and evo_core, and call no I/O builtins."""

from __future__ import annotations

import ast
from pathlib import Path

import projections

PACKAGE = Path(projections.__file__).parent
ALLOWED = {"__future__", "typing", "csv", "io", "msgspec", "evo_core", "projections"}
FORBIDDEN_MODULES = {"evo_core.config"}  # pydantic: costly, and never needed to read events
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def test_every_module_is_checked() -> None:
    names = {p.stem for p in _modules()}
    assert {"head", "candidates", "lineage", "evolution_log", "proposal"} <= names
    assert {"timeline", "asof", "status", "summary", "records"} <= names


def test_imports_are_pure() -> None:
    for path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"
                assert name not in FORBIDDEN_MODULES, f"{path.name} imports {name}"


def test_no_io_builtins() -> None:
    for path in _modules():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in FORBIDDEN_CALLS, f"{path.name} calls {node.func.id}"


def test_public_names_are_reexported() -> None:
    for name in projections.__all__:
        assert hasattr(projections, name), name
