"""Every budget resource is really breached during training, stops it, and is reported."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from adapters.training.budget import GIB, BudgetMeter, peak_memory_gb
from adapters.training.trainer import train
from evo_core.gates import BUDGET_RESOURCES
from tests.training.conftest import LIMITS


def _limits(**kw):  # type: ignore[no-untyped-def]
    return msgspec.structs.replace(LIMITS, **kw)


def _breached(spec, resource: str):  # type: ignore[no-untyped-def]
    result = train(spec)
    assert result.status == "breached", (result.status, result.reason)
    assert result.resource == resource and resource in BUDGET_RESOURCES
    assert result.used > result.limit
    stats = json.loads((Path(spec.out_dir) / "training.json").read_text())
    assert stats["status"] == "breached" and stats["breach"]["resource"] == resource
    assert not (Path(spec.out_dir) / "weights").exists() or resource == "disk"
    return result


def test_steps(make_spec) -> None:  # type: ignore[no-untyped-def]
    r = _breached(make_spec(steps=8, budget=_limits(max_steps=3)), "steps")
    assert (r.limit, r.used) == (3.0, 4.0)  # the 4th step would exceed it: it never runs
    assert r.stats.steps == r.budget_used.steps == 3


def test_tokens(make_spec) -> None:  # type: ignore[no-untyped-def]
    r = _breached(make_spec(steps=8, budget=_limits(max_tokens_processed=100)), "tokens")
    assert r.limit == 100.0 and r.used == r.budget_used.tokens_processed > 100
    assert 1 <= r.stats.steps < 8  # 4 examples of ~9-20 tokens a step: over 100 within 3 steps


def test_walltime(make_spec) -> None:  # type: ignore[no-untyped-def]
    r = _breached(make_spec(steps=8, budget=_limits(max_walltime_minutes=1e-6)), "walltime")
    assert r.limit == 1e-6 and 1e-6 < r.used <= r.budget_used.walltime_minutes
    assert r.stats.steps < 8


def test_memory_is_peak_rss_on_cpu(make_spec) -> None:  # type: ignore[no-untyped-def]
    r = _breached(make_spec(steps=8, budget=_limits(max_gpu_memory_gb=0.01)), "gpu_memory")
    assert r.limit == 0.01 and r.used <= r.budget_used.gpu_memory_gb
    assert 0.05 < r.used <= peak_memory_gb("cpu") + 1e-9  # this process, torch included
    assert r.stats.steps < 8


def test_disk_before_training(make_spec) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(steps=8, budget=_limits(max_disk_gb=1e-7))  # ~107 bytes
    r = _breached(spec, "disk")
    assert round(r.used * GIB) == (Path(spec.out_dir) / "train_args.json").stat().st_size
    assert r.stats.steps == 0  # train_args.json alone is over it


def test_disk_after_saving_the_weights(make_spec) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(steps=2, budget=_limits(max_disk_gb=20_000 / GIB))  # 20 kB: args fit, weights not
    r = _breached(spec, "disk")
    assert r.stats.steps == 2 and r.used * GIB > 100_000
    assert (Path(spec.out_dir) / "weights" / "model.safetensors").exists()  # archived as breached


def test_meter_reports_the_first_breach_in_order(tmp_path: Path) -> None:
    limits = _limits(max_steps=2, max_tokens_processed=10, max_disk_gb=1e-9)
    meter = BudgetMeter(limits, tmp_path / "out", "cpu", disk_every=1)
    assert meter.before_step() is None and meter.after_step(5) is None
    assert meter.after_step(4) is None
    assert meter.before_step() == ("steps", 2.0, 3.0)
    assert meter.after_step(2) == ("steps", 2.0, 3.0)  # steps before tokens in one check
    meter.steps = 0
    assert meter.check() == ("tokens", 10.0, 11.0)
    meter.tokens = 0
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "f").write_bytes(b"x" * 10)
    assert meter.check() is None  # disk measured only when asked
    assert meter.after_save() == ("disk", 1e-9, 10 / GIB)
    used = meter.used()
    assert used.disk_gb == 10 / GIB and used.tokens_processed == 0 and used.walltime_minutes > 0
    assert set(meter.left()) == set(BUDGET_RESOURCES)
