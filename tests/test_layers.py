"""The layers of DESIGN.md, checked on the source: each package imports only what its row of
the table allows, and the core does no I/O (STYLE rule 1: values in, values out)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PURE_STDLIB = {
    "__future__", "typing", "enum", "math", "functools", "itertools", "dataclasses",
    "collections", "tomllib", "csv", "io", "re",
}
ALLOWED = {
    "evo_core": PURE_STDLIB | {"msgspec", "pydantic", "evo_core"},
    "projections": PURE_STDLIB | {"msgspec", "evo_core", "projections"},
    "ledger": PURE_STDLIB
    | {"msgspec", "blake3", "evo_core", "ledger", "os", "fcntl", "time", "contextlib", "pathlib"},
}
IO_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            names.append(node.module or "")
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_layer_imports_only_what_it_may(package: str) -> None:
    files = sorted((ROOT / package).glob("*.py"))
    assert files
    for path in files:
        for name in _imports(path):
            top = name.split(".")[0]
            assert top in ALLOWED[package], f"{package}/{path.name} imports {name}"


@pytest.mark.parametrize("package", ["evo_core", "projections"])
def test_the_core_calls_no_io(package: str) -> None:
    for path in sorted((ROOT / package).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in IO_CALLS, f"{package}/{path.name} calls {node.func.id}"
