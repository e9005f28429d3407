"""Session fixtures around the demo genesis, built once per test session by the real
``evo init --demo`` (~10 s on 2 cores). ``tests/conftest.py`` registers them for every test
folder (import them nowhere else, or pytest builds them again for that module).

They are shared by every test of the session: read them, never change them (copy first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.cli import main

GENESIS = "Luna-G000-genesis"


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory, _operator_key_files: tuple[Path, Path]) -> Path:
    """A workspace made by ``evo init --demo`` (its home folder), pinning the test operator's key."""
    home = tmp_path_factory.mktemp("demo-workspace") / "home"
    assert main(["--home", str(home), "init", "--demo", "--operator-key", str(_operator_key_files[1])]) == 0
    return home


@pytest.fixture(scope="session")
def demo_genesis(demo_workspace: Path) -> Path:
    """The demo genesis generation's archive folder: ``weights/`` (HF folder), ``data_ids.json``."""
    return demo_workspace / "models" / "archive" / GENESIS


@pytest.fixture(scope="session")
def demo_model(demo_genesis: Path) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of the demo genesis, loaded once (eval mode, CPU, float32)."""
    from adapters.models.hf import load_generation

    return load_generation(demo_genesis)
