"""Fixtures shared by every test folder, registered once so that session fixtures are built
once per session (see ``tests/fixtures_models.py``: the demo genesis, built by `evo init --demo`).

Every test runs as the test operator (``tests.operator_key``): ``$EVO_OPERATOR_KEY`` names its
key file, so `evo init` pins it and `evo approve` signs with it unless a test says otherwise;
``$EVO_OPERATOR_HOME`` (the operator's witness) is the test's own folder, never ~/.config."""

from pathlib import Path

import pytest

from tests import operator_key
from tests.fixtures_models import demo_genesis, demo_model, demo_workspace  # noqa: F401


@pytest.fixture(scope="session")
def _operator_key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return operator_key.write_files(tmp_path_factory.mktemp("test-operator"))


@pytest.fixture(autouse=True)
def _test_operator(
    _operator_key_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVO_OPERATOR_KEY", str(_operator_key_files[0]))
    monkeypatch.setenv("EVO_OPERATOR_HOME", str(tmp_path / "operator-home"))
