"""How a gate's verdict reads: the one wording that ``evo explain`` and EVAL.md share.

A bounded gate (``method == "tango-paired"``, see ``evo_core.gates``) reads as the observed
paired difference, the items behind it and the bound that decided, e.g.

    generalize gate: +0.0333 vs HEAD (1 more of 30: 1 won, 0 lost), 95% lower bound -0.0521 < delta 0.02
    recall gate: -0.2667 vs HEAD (8 fewer of 30: 0 won, 8 lost), 95% upper bound on the drop 0.4146 > epsilon 0.15

A gate recorded before bounds (``method == ""``) reads as its raw comparison, as it always did.
"""

from __future__ import annotations

from evo_core.gates import MEAN, PAIRED, budget_breaches
from evo_core.values import BudgetLimits, BudgetUsed, GateResult

UNITS = {"walltime": "min", "gpu_memory": "GB", "disk": "GB"}
COMPARE = {"recall": ">=", "generalize": ">=", "tone": "<=", "laws": "==", "budget": "=="}
RAW_RULES = {
    "recall": "recall >= HEAD - epsilon",
    "generalize": "generalize >= HEAD + delta",
    "tone": "tone_drift <= theta",
    "laws": "law_violations == 0",
    "budget": "budget_used <= budget (over-budget resources)",
}


def number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:.4g}"


def quantity(value: float, unit: str) -> str:
    return f"{number(value)} {unit}" if unit else number(value)


def breach_text(resource: str, limit: float, used: float) -> str:
    unit = UNITS.get(resource, "")
    return f"{resource} {quantity(used, unit)} > {quantity(limit, unit)} (over by {quantity(used - limit, unit)})"


def percent(confidence: float | None) -> str:
    return "-" if confidence is None else f"{confidence * 100:g}%"


def is_upper(gate: GateResult) -> bool:
    """Recall bounds the drop from above (non-inferiority); generalize the gain from below."""
    return gate.name == "recall"


def difference_text(gate: GateResult) -> str:
    """The observed paired difference and the items behind it: ``+0.0333 vs HEAD (1 more of 30:
    1 won, 0 lost)``."""
    n, net = gate.n_items, gate.wins - gate.losses
    more = f"{net} more" if net > 0 else (f"{-net} fewer" if net < 0 else "as many")
    return f"{net / n:+.4f} vs HEAD ({more} of {n}: {gate.wins} won, {gate.losses} lost)"


def bound_text(gate: GateResult) -> str:
    """The bound against its tolerance: ``95% lower bound -0.0521 < delta 0.02``."""
    bound = 0.0 if gate.bound is None else gate.bound
    if is_upper(gate):
        cmp = "<=" if gate.passed else ">"
        return f"{percent(gate.confidence)} upper bound on the drop {bound:.4f} {cmp} epsilon {gate.threshold:g}"
    cmp = ">=" if gate.passed else "<"
    return f"{percent(gate.confidence)} lower bound {bound:+.4f} {cmp} delta {gate.threshold:g}"


def evidence_text(gate: GateResult) -> str:
    """What the verdict rests on, beyond value and threshold ("" for a raw gate)."""
    if gate.method == PAIRED and gate.n_items:
        return f"{difference_text(gate)}, {bound_text(gate)}"
    if gate.method == MEAN:
        return f"mean over {gate.n_items} prompts"
    return ""


def rule_text(gate: GateResult) -> str:
    """The rule the gate applied, as EVAL.md states it."""
    if gate.method == PAIRED:
        c = percent(gate.confidence)
        if is_upper(gate):
            return f"{c} upper bound of (HEAD - recall), paired by fact, <= epsilon"
        return f"{c} lower bound of (generalize - HEAD), paired by item, >= delta"
    if gate.method == MEAN:
        return "mean tone_drift over the prompts <= theta"
    return RAW_RULES.get(gate.name, "")


def gate_text(gate: GateResult, budget: BudgetLimits | None, used: BudgetUsed | None) -> str:
    """Why one failed gate failed, with the number it missed by."""
    g = gate
    match g.name:
        case "recall" | "generalize" if g.method == PAIRED and g.n_items:
            return f"{g.name} gate: {difference_text(g)}, {bound_text(g)}"
        case "recall" | "generalize":
            return f"{g.name} gate: {g.name} {g.value:.4f} < {g.threshold:.4f} (short by {-g.margin:.4f})"
        case "tone":
            over = f"tone gate: tone drift {g.value:.4f} > {g.threshold:.4f} (over by {-g.margin:.4f})"
            return over + (f", mean over {g.n_items} prompts" if g.method == MEAN else "")
        case "laws":
            return f"laws gate: {number(g.value)} law violations > 0"
        case "budget" if budget is not None and used is not None:
            over_budget = budget_breaches(used, budget)
            if over_budget:
                return "budget gate: " + ", ".join(breach_text(r, lim, u) for r, lim, u in over_budget)
    return f"{g.name} gate: {g.value:.4g} vs threshold {g.threshold:.4g} (margin {g.margin:+.4g})"
