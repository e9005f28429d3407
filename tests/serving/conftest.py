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
