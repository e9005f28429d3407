"""`evo du`: bytes on disk per generation, by part, as text and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Evo

GENESIS = "Luna-G000-genesis"


def test_du_lists_each_generation_by_part(demo_workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    evo = Evo(demo_workspace, capsys)
    r = evo("du", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    (row,) = [g for g in data["generations"] if g["name"] == GENESIS]
    folder = demo_workspace / "models" / "archive" / GENESIS
    assert row["where"] == "archive" and row["gguf"] == (folder / "model.gguf").stat().st_size
    assert row["weights"] == sum(p.stat().st_size for p in (folder / "weights").iterdir())
    assert row["total"] == row["weights"] + row["adapter"] + row["gguf"] + row["other"]
    assert json.loads((folder / "export.json").read_text())["disk"]["weights"] == row["weights"]
    text = evo("du")
    assert text.code == 0 and GENESIS in text.out and text.out.splitlines()[-1].startswith("total")


def test_du_outside_a_workspace_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = Evo(tmp_path / "nowhere", capsys)("du")
    assert r.code == 1 and "evo init" in r.err and r.err.count("\n") == 1
