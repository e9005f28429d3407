"""A trained candidate whose GGUF does not match its weights fails: ``FAIL - export parity``."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from adapters.serving import gguf_export
from adapters.training.spec import TrainResult
from adapters.training.worker import export
from evo_core.values import BudgetUsed, TrainingStats

FINISHED = TrainResult(
    candidate="Luna-G001-a-c10",
    status="finished",
    stats=TrainingStats(steps=3, loss_start=2.0, loss_final=1.0),
    budget_used=BudgetUsed(steps=3, tokens_processed=300),
)


@pytest.fixture
def out_dir(demo_genesis: Path, tmp_path: Path) -> Path:
    out = tmp_path / FINISHED.candidate
    shutil.copytree(demo_genesis / "weights", out / "weights")
    return out


def test_a_matching_export_keeps_the_candidate_finished(out_dir: Path) -> None:
    result = export(SimpleNamespace(out_dir=str(out_dir), candidate=FINISHED.candidate, gguf_type="f32"), FINISHED)
    assert result == FINISHED
    assert (out_dir / "model.gguf").is_file() and (out_dir / "export.json").is_file()


def test_a_gguf_that_does_not_match_fails_the_candidate(out_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def unpermuted(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
        return np.asarray(weights)  # llama.cpp's rotary layout skipped: logits diverge

    monkeypatch.setattr(gguf_export, "permute_qk", unpermuted)
    result = export(SimpleNamespace(out_dir=str(out_dir), candidate=FINISHED.candidate, gguf_type="f32"), FINISHED)
    assert result.status == "failed"
    assert result.reason.startswith("export parity (parity FAILED")
    assert result.budget_used == FINISHED.budget_used  # what it used is still reported
    assert (out_dir / "export.json").is_file()  # the evidence stays
