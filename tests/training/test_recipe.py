"""The recipe: the learning-rate schedule and the divergence guard, as the trainer applies them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.training.recipe import Diverged, DivergenceGuard, lr_factor
from adapters.training.spec import Schedule
from adapters.training.trainer import train


def test_warm_up_then_cosine_down_to_the_floor() -> None:
    s = Schedule(warmup_steps=10, kind="cosine", min_lr_ratio=0.1)
    f = [lr_factor(i, 100, s) for i in range(100)]
    assert f[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert f[10] == pytest.approx(1.0) and f[-1] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # never rises after the warm-up
    assert f[10 + 89 // 2] == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi * (44 / 89))) / 2)


def test_linear_and_constant() -> None:
    lin = Schedule(warmup_steps=0, kind="linear", min_lr_ratio=0.0)
    assert [lr_factor(i, 5, lin) for i in range(5)] == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])
    const = Schedule(warmup_steps=2, kind="constant")
    assert [lr_factor(i, 5, const) for i in range(5)] == pytest.approx([0.5, 1.0, 1.0, 1.0, 1.0])


@given(st.integers(0, 50), st.integers(1, 400), st.floats(0, 1), st.sampled_from(["cosine", "linear", "constant"]))
def test_the_factor_stays_between_the_floor_and_the_peak(warmup: int, total: int, floor: float, kind: str) -> None:
    s = Schedule(warmup_steps=warmup, kind=kind, min_lr_ratio=floor)  # type: ignore[arg-type]
    for step in range(total):
        f = lr_factor(step, total, s)
        assert 0.0 < f <= 1.0 or (f == 0.0 and floor == 0.0)
        if step >= warmup:
            assert f >= floor - 1e-12


def test_a_falling_or_noisy_loss_never_trips_the_guard() -> None:
    guard = DivergenceGuard(Schedule(warmup_steps=5, divergence_factor=3.0))
    for step in range(600):
        guard.check(2.0 * math.exp(-step / 100) + 0.05 + 0.3 * ((step * 7919) % 13) / 13)


def test_a_climb_like_the_measured_divergences_trips_it() -> None:
    guard = DivergenceGuard(Schedule(warmup_steps=5, divergence_factor=3.0))
    losses = [3.0 - 2.1 * min(1.0, s / 200) for s in range(250)] + [0.9 + 0.05 * s for s in range(100)]
    with pytest.raises(Diverged, match=r"smoothed loss .* over 3x its best") as err:
        for loss in losses:
            guard.check(loss)
    assert "learning_rate" in str(err.value)  # the reason says what to change


def test_a_non_finite_loss_trips_it_at_once() -> None:
    guard = DivergenceGuard(Schedule())
    guard.check(1.0)
    with pytest.raises(Diverged, match="not finite|nan"):
        guard.check(float("nan"))


def test_the_trainer_records_its_schedule_and_curve(make_spec) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(steps=12, schedule=Schedule(warmup_steps=3, kind="cosine", min_lr_ratio=0.1, max_grad_norm=0.5))
    result = train(spec)
    assert result.status == "finished", result.reason
    args = json.loads((Path(spec.out_dir) / "train_args.json").read_text())
    assert args["schedule"] == {"warmup_steps": 3, "kind": "cosine", "min_lr_ratio": 0.1,
                                "max_grad_norm": 0.5, "divergence_factor": 3.0}
    curve = json.loads((Path(spec.out_dir) / "training.json").read_text())["loss_curve"]
    assert [s for s, _ in curve] == list(range(1, 13))  # a short run: every step


def test_the_curve_keeps_about_a_hundred_points_and_the_last_step() -> None:
    from adapters.training.trainer import curve_every

    for planned in (1, 12, 100, 101, 600, 2000, 2001):
        every = curve_every(planned)
        recorded = [s + 1 for s in range(planned) if s % every == 0 or s + 1 == planned]
        assert recorded[0] == 1 and recorded[-1] == planned
        assert min(planned, 50) <= len(recorded) <= 101


def test_the_scheduler_and_clipping_reach_the_optimizer(make_spec, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import torch

    rates: list[float] = []
    norms: list[float] = []
    step = torch.optim.AdamW.step
    clip = torch.nn.utils.clip_grad_norm_

    def spy_step(self, *a, **k):  # type: ignore[no-untyped-def]
        rates.append(self.param_groups[0]["lr"])
        return step(self, *a, **k)

    def spy_clip(params, max_norm, *a, **k):  # type: ignore[no-untyped-def]
        params = list(params)
        total = clip(params, max_norm, *a, **k)
        norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
        assert norms[-1] <= max_norm * (1 + 1e-4)
        return total

    monkeypatch.setattr(torch.optim.AdamW, "step", spy_step)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy_clip)
    spec = make_spec(steps=8, learning_rate=1e-2,
                     schedule=Schedule(warmup_steps=4, kind="linear", min_lr_ratio=0.5, max_grad_norm=1e-3))
    assert train(spec).status == "finished"
    assert rates == pytest.approx([1e-2 * lr_factor(i, 8, spec.schedule) for i in range(8)])
    assert len(norms) == 8  # clipped every step


def test_a_diverging_run_fails_with_the_reason_and_exports_nothing(make_spec) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(steps=40, learning_rate=50.0,
                     schedule=Schedule(warmup_steps=0, kind="constant", max_grad_norm=0.0, divergence_factor=1.5))
    result = train(spec)
    assert result.status == "failed"
    assert result.reason.startswith("diverged:"), result.reason
    out = Path(spec.out_dir)
    assert not (out / "weights").exists() and not (out / "adapter").exists()
    assert json.loads((out / "training.json").read_text())["status"] == "failed"
