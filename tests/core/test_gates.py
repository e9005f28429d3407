"""The five gates and the score (spec step 5): the raw rule at its exact boundaries (metrics
without per-item outcomes: old ledgers), then the bounded gates on paired outcomes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evo_core.config import GateConfig
from evo_core.errors import InvalidInput
from evo_core.gates import (
    GATE_NAMES,
    budget_breaches,
    check_metrics,
    evaluate_gates,
    failed_gates,
    score,
)
from evo_core.values import BudgetLimits, BudgetUsed, GateResult, Metrics

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
    out = evaluate_gates(metrics, HEAD, used, LIMITS, epsilon=EPS, delta=DELTA, theta=THETA, confidence=0.95)
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
                         epsilon=EPS, delta=DELTA, theta=THETA, confidence=0.95)
    by = {g.name: g for g in out}
    assert (by["recall"].threshold, by["recall"].margin) == (0.25, 0.25)
    assert (by["generalize"].threshold, by["generalize"].margin) == (0.625, 0.125)
    assert (by["tone"].threshold, by["tone"].margin) == (0.25, 0.125)
    assert (by["laws"].passed, by["laws"].value, by["laws"].margin) == (False, 2.0, -2.0)
    assert (by["budget"].passed, by["budget"].margin) == (False, -50.0)
    assert failed_gates(out) == ["laws", "budget"]
    assert all((g.method, g.bound, g.confidence, g.n_items) == ("", None, None, 0) for g in out)  # as before bounds


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


# ---------------------------------------------------------------- bounded gates (paired outcomes)

GATES = GateConfig()  # the defaults: what the demo and a fresh workspace run on


def items(right: int, n: int, *, offset: int = 0) -> str:
    """``right`` items right out of ``n``, starting at item ``offset`` (wrapping around)."""
    return "".join("1" if (i - offset) % n < right else "0" for i in range(n))


def measured(recall: str = "", generalize: str = "", tone: tuple[float, ...] = ()) -> Metrics:
    return Metrics(
        recall=recall.count("1") / len(recall) if recall else 0.0,
        generalize=generalize.count("1") / len(generalize) if generalize else 0.0,
        tone_drift=sum(tone) / len(tone) if tone else 0.0,
        law_violations=0,
        recall_outcomes=recall,
        generalize_outcomes=generalize,
        tone_drifts=tone,
    )


def judge(cand: Metrics, head: Metrics, config: GateConfig = GATES) -> dict[str, GateResult]:
    out = evaluate_gates(
        cand, head, BudgetUsed(), LIMITS, epsilon=config.epsilon, delta=config.delta, theta=config.theta,
        confidence=config.confidence,
    )
    return {g.name: g for g in out}


def test_recall_does_not_fail_on_one_unlucky_fact_but_fails_on_a_real_loss() -> None:
    head = measured(recall=items(30, 30))
    assert judge(measured(recall=items(30, 30)), head)["recall"].passed  # equal to HEAD
    one = judge(measured(recall=items(29, 30)), head)["recall"]
    assert one.passed and one.bound == pytest.approx(0.1364, abs=1e-4)
    assert not judge(measured(recall=items(22, 30)), head)["recall"].passed  # 8 facts lost
    assert not judge(measured(recall=items(28, 30)), head)["recall"].passed  # 2 of 30 is more than noise
    # why the default is not the spec's 0.05: 30 facts cannot show a drop <= 0.05 even for a
    # candidate equal to HEAD (upper bound 0.083), let alone one that lost a fact
    spec = GateConfig(epsilon=0.05)
    assert not judge(measured(recall=items(30, 30)), head, spec)["recall"].passed
    assert judge(measured(recall=items(60, 60)), measured(recall=items(60, 60)), spec)["recall"].passed


def test_generalize_does_not_pass_on_one_lucky_answer_but_passes_a_clear_gain() -> None:
    lucky = [  # (HEAD right, candidate right, shift of the candidate's items): 1 more of 30
        (0, 1, 0), (10, 11, 0), (15, 16, 2), (29, 30, 0),
    ]
    for head_right, cand_right, shift in lucky:
        g = judge(measured(generalize=items(cand_right, 30, offset=shift)), measured(generalize=items(head_right, 30)))
        gate = g["generalize"]
        assert not gate.passed, (head_right, cand_right, shift, gate.bound)
        assert gate.wins - gate.losses == 1 and gate.bound is not None and gate.bound < GATES.delta
    clear = judge(measured(generalize=items(20, 30)), measured(generalize=items(2, 30)))["generalize"]
    assert clear.passed and clear.bound is not None and clear.bound > 0.3
    # and one unlucky answer does not sink a clear gain
    assert judge(measured(generalize=items(19, 30)), measured(generalize=items(2, 30)))["generalize"].passed


def test_a_bounded_gate_records_its_evidence() -> None:
    cand = measured(recall=items(29, 30), generalize=items(16, 30), tone=(0.01, 0.02, 0.0))
    head = measured(recall=items(30, 30), generalize=items(0, 30), tone=(0.0, 0.0, 0.0))
    g = judge(cand, head)
    r, gen, tone = g["recall"], g["generalize"], g["tone"]
    assert (r.method, r.n_items, r.wins, r.losses, r.confidence) == ("tango-paired", 30, 0, 1, 0.95)
    assert (r.value, r.threshold) == (29 / 30, GATES.epsilon) and r.bound is not None
    assert r.margin == pytest.approx(GATES.epsilon - r.bound)
    assert (gen.method, gen.n_items, gen.wins, gen.losses, gen.threshold) == ("tango-paired", 30, 16, 0, GATES.delta)
    assert gen.bound is not None and gen.margin == pytest.approx(gen.bound - GATES.delta)
    assert gen.bound < 16 / 30 and r.bound > 1 / 30  # the bounds are on the cautious side of the data
    assert (tone.method, tone.n_items, tone.passed, tone.bound) == ("mean", 3, True, None)


def test_without_outcomes_on_either_side_the_raw_rule_applies_unchanged() -> None:
    cand, head = measured(recall=items(29, 30), generalize=items(16, 30)), measured(recall=items(30, 30), generalize=items(0, 30))
    bare = lambda x: Metrics(recall=x.recall, generalize=x.generalize, tone_drift=x.tone_drift,  # noqa: E731
                             law_violations=x.law_violations)
    raw = judge(bare(cand), bare(head))
    for mixed in (judge(cand, bare(head)), judge(bare(cand), head)):
        assert mixed == raw
    assert raw["recall"].threshold == pytest.approx(1.0 - GATES.epsilon) and raw["recall"].method == ""
    assert raw["generalize"].threshold == pytest.approx(GATES.delta) and raw["generalize"].bound is None


def test_outcomes_on_different_items_are_refused() -> None:
    with pytest.raises(InvalidInput, match="same probe items"):
        judge(measured(recall=items(29, 30)), measured(recall=items(60, 60)))


@pytest.mark.parametrize(
    "bad",
    [
        Metrics(recall=0.5, generalize=0.0, tone_drift=0.0, law_violations=0, recall_outcomes="111"),
        Metrics(recall=0.5, generalize=0.0, tone_drift=0.0, law_violations=0, recall_outcomes="1x"),
        Metrics(recall=0.0, generalize=0.5, tone_drift=0.0, law_violations=0, generalize_outcomes="11"),
        Metrics(recall=0.0, generalize=0.0, tone_drift=0.5, law_violations=0, tone_drifts=(0.1, 0.2)),
        Metrics(recall=0.0, generalize=0.0, tone_drift=0.5, law_violations=0, tone_drifts=(1.5, -0.5)),
    ],
)
def test_metrics_must_agree_with_their_evidence(bad: Metrics) -> None:
    with pytest.raises(InvalidInput):
        check_metrics(bad)
    check_metrics(measured(recall=items(3, 4), generalize=items(1, 2), tone=(0.1, 0.3)))


def test_half_confidence_compares_the_raw_paired_difference() -> None:
    cand, head = measured(generalize=items(2, 30)), measured(generalize=items(1, 30))
    gate = judge(cand, head, GateConfig(confidence=0.5))["generalize"]
    assert gate.bound == pytest.approx(1 / 30) and gate.passed  # +0.033 >= delta 0.02 with no caution


outcome_pairs = st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.text("01", min_size=n, max_size=n), st.text("01", min_size=n, max_size=n))
)


def _flip(text: str, at: int, to: str) -> str:
    return text[:at] + to + text[at + 1:]


@given(outcome_pairs, outcome_pairs, st.integers(0, 59), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_a_better_candidate_or_a_worse_head_never_turns_a_pass_into_a_fail(
    rec: tuple[str, str], gen: tuple[str, str], at: int, confidence: float
) -> None:
    config = GateConfig(confidence=confidence)
    (cr, hr), (cg, hg) = rec, gen
    before = judge(measured(recall=cr, generalize=cg), measured(recall=hr, generalize=hg), config)
    i, j = at % len(cr), at % len(cg)
    better = judge(measured(recall=_flip(cr, i, "1"), generalize=_flip(cg, j, "1")),
                   measured(recall=hr, generalize=hg), config)
    weaker_head = judge(measured(recall=cr, generalize=cg),
                        measured(recall=_flip(hr, i, "0"), generalize=_flip(hg, j, "0")), config)
    for name in ("recall", "generalize"):
        assert not before[name].passed or better[name].passed, name
        assert not before[name].passed or weaker_head[name].passed, name
        assert before[name].margin <= better[name].margin + 1e-12


@given(outcome_pairs, st.sampled_from([0.6, 0.8, 0.9, 0.95]))
def test_more_confidence_never_turns_a_fail_into_a_pass(gen: tuple[str, str], confidence: float) -> None:
    cand, head = measured(recall=gen[0], generalize=gen[0]), measured(recall=gen[1], generalize=gen[1])
    lax, strict = judge(cand, head, GateConfig(confidence=confidence)), judge(cand, head, GateConfig(confidence=0.99))
    for name in ("recall", "generalize"):
        assert lax[name].passed or not strict[name].passed
