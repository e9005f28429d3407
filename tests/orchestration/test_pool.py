"""The training pool: every candidate gets a result, whatever its worker does."""

from __future__ import annotations

import io
from pathlib import Path

import msgspec
from typing import Any

from adapters.training.pool import run_pool, threads_per_worker
from adapters.training.progress import ProgressBoard
from adapters.training.spec import Distill, Lora, TrainSpec
from evo_core.values import BudgetLimits
from tests.orchestration import _workers


def spec(branch: str) -> TrainSpec:
    return TrainSpec(
        candidate=f"Luna-G001-{branch}-c10",
        window=1,
        gen=1,
        branch=branch,
        seed=424242,
        strategy="uniform_sample",
        parent="Luna-G000-genesis",
        parent_dir="/nonexistent",
        stabilizer=None,
        stabilizer_dir=None,
        cache_path="/nonexistent",
        example_ids=("x",),
        new_count=1,
        data_delta_hash="0" * 64,
        out_dir="/nonexistent",
        budget=BudgetLimits(
            max_steps=10, max_walltime_minutes=1, max_gpu_memory_gb=1, max_tokens_processed=100, max_disk_gb=1
        ),
        distill=Distill(alpha=0.1, beta=0.9, temperature=2.0, stabilizer_weight=0.3),
        lora=Lora(r=2, alpha=4, dropout=0.0, target_modules=("q_proj",)),
        steps=3,
        batch_size=1,
        learning_rate=1e-3,
    )


def test_a_dead_worker_becomes_a_failed_candidate_and_the_others_finish() -> None:
    progress: list[tuple[str, dict[str, Any]]] = []
    done: list[str] = []
    results = run_pool(
        [spec("a"), spec("b"), spec("c")],
        on_progress=lambda c, p: progress.append((c, p)),
        on_done=lambda r: done.append(r.candidate),
        target=_workers.by_branch,
    )
    assert results["Luna-G001-a-c10"].status == "finished"
    assert results["Luna-G001-a-c10"].stats.steps == 3
    assert results["Luna-G001-b-c10"].status == "failed"
    assert results["Luna-G001-b-c10"].reason == "worker killed by SIGKILL"
    assert results["Luna-G001-c-c10"].status == "failed"
    assert "exited with code 3" in results["Luna-G001-c-c10"].reason
    assert sorted(done) == sorted(results)
    assert [p["step"] for c, p in progress if c == "Luna-G001-a-c10"] == [1, 2, 3]


def test_candidates_train_at_once_not_one_after_another(tmp_path: Path) -> None:
    specs = [msgspec.structs.replace(spec(b), out_dir=str(tmp_path)) for b in "abc"]
    results = run_pool(specs, target=_workers.rendezvous)
    assert {r.status for r in results.values()} == {"finished"}


def test_threads_are_divided_among_workers() -> None:
    assert threads_per_worker(3, cores=2) == 1
    assert threads_per_worker(2, cores=16) == 8
    assert threads_per_worker(1, cores=2) == 2


def test_progress_board_prints_tenths_and_outcomes_when_not_a_terminal() -> None:
    out = io.StringIO()
    board = ProgressBoard(["a"], stream=out)
    for step in range(1, 101):
        board.update("a", {"step": step, "steps": 100, "loss": 1.0, "tokens": step * 100, "budget_left": {"steps": 100 - step}})
    lines = out.getvalue().splitlines()
    assert len(lines) == 11 and " 1/100 " in lines[0] and "100/100" in lines[-1] and "left 0 steps" in lines[-1]
