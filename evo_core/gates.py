"""The five gates and the composite score of the spec (step 5, RANK), as pure functions.

The spec's tolerances keep their meaning; what they are compared with accounts for sampling
noise when the metrics carry per-item outcomes (``Metrics.recall_outcomes`` /
``generalize_outcomes``: one ``'1'``/``'0'`` per probe item, HEAD and the candidate on the same
items). With ``c`` the confidence (``GateConfig.confidence``, one-sided) and the bounds of
``evo_core.bounds`` (Tango's score interval for a paired difference):

    recall      passes iff  upper c-bound of (HEAD.recall - recall)        <= epsilon
    generalize  passes iff  lower c-bound of (generalize - HEAD.generalize) >= delta
    tone_drift  <= theta          (the plain mean over the tone prompts: see below)
    law_violations == 0           (strict: one violation fails)
    budget_used <= budget         (every resource)

so a candidate passes only when the evidence supports it at confidence c: one lucky answer
cannot carry generalize (30 items, 1 more right than HEAD: lower bound -0.05 < delta), and one
unlucky answer cannot sink recall (29 of 30 facts against 30 of 30: upper bound 0.136 <=
epsilon 0.15). Without per-item outcomes on both sides (ledgers written before them, or a
runner that does not record them) the raw rule applies, exactly as before:

    recall >= HEAD.recall - epsilon        generalize >= HEAD.generalize + delta

Tone is not bounded. Its drift is not a right/wrong answer that luck can flip: it is the mean,
over the tone prompts, of the Jensen-Shannon divergence of the full next-token distributions at
K positions teacher-forced on HEAD's answer, so one prompt moves it by at most 1/n of its own
drift and greedy decoding makes it exact for a model. A distribution-free bound over the demo's
6 prompts (Hoeffding: + sqrt(ln(20) / 12) = +0.50) would fail every candidate at theta 0.05,
and a t bound would rest on normality of 6 skewed values. The per-prompt drifts are recorded
(``Metrics.tone_drifts``) so the evidence stays auditable.

    score = w_recall * recall + w_generalize * generalize + w_tone * (1 - tone_drift)

Thresholds and weights come from the config (see ``GateConfig`` for the defaults and why
epsilon is 0.15). Each gate reports its margin: how far it is on the passing side of its
threshold (negative when it fails): for a bounded gate, how far the bound is from the tolerance.
"""

from __future__ import annotations

import math
from typing import Sequence

from evo_core.bounds import lower_bound, normal_quantile, paired_counts
from evo_core.errors import InvalidInput
from evo_core.values import BudgetLimits, BudgetUsed, GateResult, Metrics

GATE_NAMES = ("recall", "generalize", "tone", "laws", "budget")

# GateResult.method: how the gate compared (the empty string: the raw rule, as before bounds)
RAW = ""
PAIRED = "tango-paired"  # a one-sided Tango score bound on the paired difference vs HEAD
MEAN = "mean"  # the plain mean over recorded per-prompt values (tone)

# budget resource -> (field of BudgetUsed, field of BudgetLimits)
BUDGET_RESOURCES: dict[str, tuple[str, str]] = {
    "steps": ("steps", "max_steps"),
    "walltime": ("walltime_minutes", "max_walltime_minutes"),
    "gpu_memory": ("gpu_memory_gb", "max_gpu_memory_gb"),
    "tokens": ("tokens_processed", "max_tokens_processed"),
    "disk": ("disk_gb", "max_disk_gb"),
}


def _check_outcomes(name: str, outcomes: str, fraction: float) -> None:
    if outcomes.strip("01"):
        raise InvalidInput(f"metric {name}_outcomes must be '0'/'1' per item, got {outcomes!r}")
    if outcomes and not math.isclose(outcomes.count("1") / len(outcomes), fraction, abs_tol=1e-9):
        raise InvalidInput(
            f"metric {name} {fraction!r} is not the fraction right in its outcomes "
            f"({outcomes.count('1')} of {len(outcomes)})"
        )


def check_metrics(metrics: Metrics) -> None:
    """Probe results must be finite and in range (recall, generalize and tone drift are all
    in [0, 1]), and agree with the per-item evidence they carry; anything else is a bug upstream."""
    for name in ("recall", "generalize", "tone_drift"):
        value = getattr(metrics, name)
        if not math.isfinite(value):
            raise InvalidInput(f"metric {name} is not a finite number: {value!r}")
        if not 0.0 <= value <= 1.0:
            raise InvalidInput(f"metric {name} must be in [0, 1], got {value!r}")
    if metrics.law_violations < 0:
        raise InvalidInput(f"law_violations cannot be negative: {metrics.law_violations}")
    _check_outcomes("recall", metrics.recall_outcomes, metrics.recall)
    _check_outcomes("generalize", metrics.generalize_outcomes, metrics.generalize)
    drifts = metrics.tone_drifts
    if drifts:
        if not all(math.isfinite(x) and 0.0 <= x <= 1.0 for x in drifts):
            raise InvalidInput(f"every tone drift must be in [0, 1], got {drifts!r}")
        if not math.isclose(math.fsum(drifts) / len(drifts), metrics.tone_drift, abs_tol=1e-9):
            raise InvalidInput(f"tone_drift {metrics.tone_drift!r} is not the mean of tone_drifts")


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


def paired(candidate: str, head: str) -> tuple[int, int, int] | None:
    """(wins, losses, n) when both sides carry outcomes on the same items; None when either side
    has none (the raw rule applies). Outcomes of different lengths are two probe sets: refused."""
    if not candidate or not head:
        return None
    if len(candidate) != len(head):
        raise InvalidInput(
            f"the candidate's outcomes ({len(candidate)} items) and HEAD's ({len(head)}) "
            "are not on the same probe items"
        )
    return paired_counts(candidate, head)


def recall_gate(metrics: Metrics, head: Metrics, *, epsilon: float, confidence: float) -> GateResult:
    """Non-inferiority: the upper bound of HEAD's recall minus the candidate's is <= epsilon."""
    counts = paired(metrics.recall_outcomes, head.recall_outcomes)
    if counts is None:
        floor = head.recall - epsilon
        return GateResult(
            name="recall",
            passed=metrics.recall >= floor,
            value=metrics.recall,
            threshold=floor,
            margin=metrics.recall - floor,
        )
    wins, losses, n = counts
    drop = -lower_bound(wins, losses, n, normal_quantile(confidence))  # upper bound of HEAD - cand
    return GateResult(
        name="recall",
        passed=drop <= epsilon,
        value=metrics.recall,
        threshold=epsilon,
        margin=epsilon - drop,
        method=PAIRED,
        bound=drop,
        confidence=confidence,
        n_items=n,
        wins=wins,
        losses=losses,
    )


def generalize_gate(metrics: Metrics, head: Metrics, *, delta: float, confidence: float) -> GateResult:
    """Superiority: the lower bound of the candidate's generalize minus HEAD's is >= delta."""
    counts = paired(metrics.generalize_outcomes, head.generalize_outcomes)
    if counts is None:
        floor = head.generalize + delta
        return GateResult(
            name="generalize",
            passed=metrics.generalize >= floor,
            value=metrics.generalize,
            threshold=floor,
            margin=metrics.generalize - floor,
        )
    wins, losses, n = counts
    gain = lower_bound(wins, losses, n, normal_quantile(confidence))
    return GateResult(
        name="generalize",
        passed=gain >= delta,
        value=metrics.generalize,
        threshold=delta,
        margin=gain - delta,
        method=PAIRED,
        bound=gain,
        confidence=confidence,
        n_items=n,
        wins=wins,
        losses=losses,
    )


def tone_gate(metrics: Metrics, *, theta: float) -> GateResult:
    n = len(metrics.tone_drifts)
    return GateResult(
        name="tone",
        passed=metrics.tone_drift <= theta,
        value=metrics.tone_drift,
        threshold=theta,
        margin=theta - metrics.tone_drift,
        method=MEAN if n else RAW,
        n_items=n,
    )


def evaluate_gates(
    metrics: Metrics,
    head: Metrics,
    used: BudgetUsed,
    limits: BudgetLimits,
    *,
    epsilon: float,
    delta: float,
    theta: float,
    confidence: float,
) -> tuple[GateResult, ...]:
    breaches = budget_breaches(used, limits)
    worst = min(
        (limit - value for _, limit, value in breaches),
        default=0.0,
    )
    return (
        recall_gate(metrics, head, epsilon=epsilon, confidence=confidence),
        generalize_gate(metrics, head, delta=delta, confidence=confidence),
        tone_gate(metrics, theta=theta),
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
