"""Serving fixtures: the demo genesis (``tests/fixtures_models.py``, registered by
``tests/conftest.py``) exported to GGUF once per session. Read them, never change them."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_gguf(demo_genesis: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo genesis's ``weights/`` exported to an f32 GGUF (a fresh file, not the archive's)."""
    from adapters.serving.gguf_export import export_gguf

    out = tmp_path_factory.mktemp("demo-gguf") / "model.gguf"
    export_gguf(demo_genesis / "weights", out, dtype="f32")
    return out


@pytest.fixture(scope="session")
def quality_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where ``tests/serving/quality_models.py`` builds its models, shared by every test folder."""
    return tmp_path_factory.getbasetemp() / "quality-models"


@pytest.fixture(scope="session")
def student_gguf(demo_genesis: Path, quality_models: Path) -> Path:
    """A sane student of the demo genesis that learned the first era's facts (~15 s)."""
    from tests.serving.quality_models import build_student

    return build_student(demo_genesis, quality_models)


@pytest.fixture(scope="session")
def garbage_gguf(demo_genesis: Path, quality_models: Path) -> Path:
    """The demo genesis with its weights scrambled: it answers garbage."""
    from tests.serving.quality_models import build_garbage

    return build_garbage(demo_genesis, quality_models)
