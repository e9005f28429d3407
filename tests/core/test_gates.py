"""The five gates and the score, at their exact boundaries (spec step 5)."""

from __future__ import annotations

import math

import pytest

from evo_core.errors import InvalidInput
from evo_core.events import BudgetLimits, BudgetUsed, Metrics
from evo_core.gates import (
    GATE_NAMES,
    budget_breaches,
    check_metrics,
    evaluate_gates,
    failed_gates,
    score,
)

HEAD = Metrics(recall=0.5, generalize=0.5, tone_drift=0.0, law_violations=0)
LIMITS = BudgetLimits(
    max_steps=100,
    max_walltime_minutes=10.0,
    max_gpu_memory_gb=4.0,
    max_tokens_processed=1000,
    max_disk_gb=1.0,
)
EPS, DELTA, THETA = 0.25, 0.125, 0.25  # exact in binary: the boundaries are exact


def gates(metrics: Metrics, used: BudgetUsed = BudgetUsed()) -> dict[str, bool]:
    out = evaluate_gates(metrics, HEAD, used, LIMITS, epsilon=EPS, delta=DELTA, theta=THETA)
    assert tuple(g.name for g in out) == GATE_NAMES
    return {g.name: g.passed for g in out}


def m(recall: float = 0.5, generalize: float = 0.625, tone: float = 0.0, laws: int = 0) -> Metrics:
    return Metrics(recall=recall, generalize=generalize, tone_drift=tone, law_violations=laws)


def test_all_pass_at_exact_boundaries() -> None:
    # recall == HEAD - eps, generalize == HEAD + delta, tone == theta, 0 laws, budget == limit
    used = BudgetUsed(steps=100, walltime_minutes=10.0, gpu_memory_gb=4.0, tokens_processed=1000, disk_gb=1.0)
    assert all(gates(m(recall=0.25, generalize=0.625, tone=0.25), used).values())


@pytest.mark.parametrize(
    "metrics, failing",
    [
        (m(recall=0.25 - 1e-9), "recall"),
        (m(generalize=0.625 - 1e-9), "generalize"),
        (m(tone=0.25 + 1e-9), "tone"),
        (m(laws=1), "laws"),
    ],
)
def test_each_gate_fails_just_past_its_boundary(metrics: Metrics, failing: str) -> None:
    result = gates(metrics)
    assert [name for name, ok in result.items() if not ok] == [failing]


@pytest.mark.parametrize(
    "used, resource",
    [
        (BudgetUsed(steps=101), "steps"),
        (BudgetUsed(walltime_minutes=10.001), "walltime"),
        (BudgetUsed(gpu_memory_gb=4.01), "gpu_memory"),
        (BudgetUsed(tokens_processed=1001), "tokens"),
        (BudgetUsed(disk_gb=1.5), "disk"),
    ],
)
def test_any_budget_resource_over_its_limit_fails_the_budget_gate(used: BudgetUsed, resource: str) -> None:
    assert [r for r, _limit, _used in budget_breaches(used, LIMITS)] == [resource]
    result = gates(m(), used)
    assert [name for name, ok in result.items() if not ok] == ["budget"]


def test_gate_values_thresholds_and_margins() -> None:
    out = evaluate_gates(m(recall=0.5, generalize=0.75, tone=0.125, laws=2), HEAD, BudgetUsed(steps=150), LIMITS,
                         epsilon=EPS, delta=DELTA, theta=THETA)
    by = {g.name: g for g in out}
    assert (by["recall"].threshold, by["recall"].margin) == (0.25, 0.25)
    assert (by["generalize"].threshold, by["generalize"].margin) == (0.625, 0.125)
    assert (by["tone"].threshold, by["tone"].margin) == (0.25, 0.125)
    assert (by["laws"].passed, by["laws"].value, by["laws"].margin) == (False, 2.0, -2.0)
    assert (by["budget"].passed, by["budget"].margin) == (False, -50.0)
    assert failed_gates(out) == ["laws", "budget"]


def test_score_default_weights_match_the_spec() -> None:
    metrics = Metrics(recall=0.9, generalize=0.7, tone_drift=0.1, law_violations=0)
    expected = 0.4 * 0.9 + 0.4 * 0.7 + 0.2 * (1 - 0.1)
    assert math.isclose(score(metrics, (0.4, 0.4, 0.2)), expected)
    assert score(metrics, (1.0, 0.0, 0.0)) == 0.9
    assert score(metrics, (0.0, 0.0, 1.0)) == pytest.approx(0.9)
    assert score(metrics, (0.0, 1.0, 0.0)) == 0.7


@pytest.mark.parametrize("field", ["recall", "generalize", "tone_drift"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_metrics_are_a_clear_error(field: str, bad: float) -> None:
    values = dict(recall=0.5, generalize=0.5, tone_drift=0.0, law_violations=0)
    values[field] = bad
    with pytest.raises(InvalidInput, match=field):
        check_metrics(Metrics(**values))  # type: ignore[arg-type]


def test_negative_law_violations_are_rejected() -> None:
    with pytest.raises(InvalidInput, match="law_violations"):
        check_metrics(m(laws=-1))


@pytest.mark.parametrize(
    "field, value", [("recall", 1.5), ("generalize", -0.1), ("tone_drift", 2.0)]
)
def test_metrics_out_of_their_unit_range_are_refused(field: str, value: float) -> None:
    fields = dict(recall=0.5, generalize=0.5, tone_drift=0.01, law_violations=0)
    fields[field] = value
    with pytest.raises(InvalidInput, match=f"{field} must be in \\[0, 1\\]"):
        check_metrics(Metrics(**fields))  # type: ignore[arg-type]
