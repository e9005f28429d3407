"""The five gates and the composite score of the spec (step 5, RANK), as pure functions.

    recall      >= HEAD.recall - epsilon
    generalize  >= HEAD.generalize + delta
    tone_drift  <= theta
    law_violations == 0
    budget_used <= budget          (every resource)

    score = w_recall * recall + w_generalize * generalize + w_tone * (1 - tone_drift)

Thresholds and weights come from the config (spec defaults: epsilon 0.05, delta 0.02,
theta 0.05; weights 0.4 / 0.4 / 0.2). Each gate reports its margin: how far the value is on
the passing side of its threshold (negative when it fails).
"""

from __future__ import annotations

import math
from typing import Sequence

from evo_core.errors import InvalidInput
from evo_core.events import BudgetLimits, BudgetUsed, GateResult, Metrics

GATE_NAMES = ("recall", "generalize", "tone", "laws", "budget")

# budget resource -> (field of BudgetUsed, field of BudgetLimits)
BUDGET_RESOURCES: dict[str, tuple[str, str]] = {
    "steps": ("steps", "max_steps"),
    "walltime": ("walltime_minutes", "max_walltime_minutes"),
    "gpu_memory": ("gpu_memory_gb", "max_gpu_memory_gb"),
    "tokens": ("tokens_processed", "max_tokens_processed"),
    "disk": ("disk_gb", "max_disk_gb"),
}


def check_metrics(metrics: Metrics) -> None:
    """Probe results must be finite and in range (recall, generalize and tone drift are all
    in [0, 1]); anything else is a bug upstream."""
    for name in ("recall", "generalize", "tone_drift"):
        value = getattr(metrics, name)
        if not math.isfinite(value):
            raise InvalidInput(f"metric {name} is not a finite number: {value!r}")
        if not 0.0 <= value <= 1.0:
            raise InvalidInput(f"metric {name} must be in [0, 1], got {value!r}")
    if metrics.law_violations < 0:
        raise InvalidInput(f"law_violations cannot be negative: {metrics.law_violations}")


def score(metrics: Metrics, weights: Sequence[float]) -> float:
    w_recall, w_generalize, w_tone = weights
    return (
        w_recall * metrics.recall
        + w_generalize * metrics.generalize
        + w_tone * (1.0 - metrics.tone_drift)
    )


def budget_breaches(used: BudgetUsed, limits: BudgetLimits) -> list[tuple[str, float, float]]:
    """Every resource over its limit, as (resource, limit, used)."""
    out = []
    for resource, (used_field, limit_field) in BUDGET_RESOURCES.items():
        value = float(getattr(used, used_field))
        limit = float(getattr(limits, limit_field))
        if value > limit:
            out.append((resource, limit, value))
    return out


def evaluate_gates(
    metrics: Metrics,
    head: Metrics,
    used: BudgetUsed,
    limits: BudgetLimits,
    *,
    epsilon: float,
    delta: float,
    theta: float,
) -> tuple[GateResult, ...]:
    recall_min = head.recall - epsilon
    generalize_min = head.generalize + delta
    breaches = budget_breaches(used, limits)
    worst = min(
        (limit - value for _, limit, value in breaches),
        default=0.0,
    )
    return (
        GateResult(
            name="recall",
            passed=metrics.recall >= recall_min,
            value=metrics.recall,
            threshold=recall_min,
            margin=metrics.recall - recall_min,
        ),
        GateResult(
            name="generalize",
            passed=metrics.generalize >= generalize_min,
            value=metrics.generalize,
            threshold=generalize_min,
            margin=metrics.generalize - generalize_min,
        ),
        GateResult(
            name="tone",
            passed=metrics.tone_drift <= theta,
            value=metrics.tone_drift,
            threshold=theta,
            margin=theta - metrics.tone_drift,
        ),
        GateResult(
            name="laws",
            passed=metrics.law_violations == 0,
            value=float(metrics.law_violations),
            threshold=0.0,
            margin=-float(metrics.law_violations),
        ),
        GateResult(
            name="budget",
            passed=not breaches,
            value=float(len(breaches)),
            threshold=0.0,
            margin=worst,
        ),
    )


def failed_gates(gates: Sequence[GateResult]) -> list[str]:
    return [g.name for g in gates if not g.passed]
