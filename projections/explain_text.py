"""``evo explain``'s text: an ``Explanation`` as the lines an auditor reads."""

from __future__ import annotations

from evo_core.gates import BUDGET_RESOURCES
from evo_core.values import BudgetLimits, BudgetUsed, GateResult, Metrics, Placement

from projections.explanation import Explanation
from projections.explain_gates import COMPARE, UNITS, breach_text, evidence_text, quantity


def _items(outcomes: str) -> str:
    return f" ({outcomes.count('1')}/{len(outcomes)})" if outcomes else ""


def _metrics_line(m: Metrics) -> str:
    prompts = f" ({len(m.tone_drifts)} prompts)" if m.tone_drifts else ""
    return (
        f"recall {m.recall:.4f}{_items(m.recall_outcomes)}, generalize {m.generalize:.4f}"
        f"{_items(m.generalize_outcomes)}, tone_drift {m.tone_drift:.4f}{prompts}, "
        f"law_violations {m.law_violations}"
    )


def _budget_lines(limits: BudgetLimits, used: BudgetUsed | None) -> list[str]:
    out = []
    for resource, (used_field, limit_field) in BUDGET_RESOURCES.items():
        unit = UNITS.get(resource, "")
        limit = float(getattr(limits, limit_field))
        spent = "-" if used is None else quantity(float(getattr(used, used_field)), unit)
        flag = ""
        if used is not None and float(getattr(used, used_field)) > limit:
            flag = "  OVER"
        out.append(f"  {resource:<11} {spent:>14} / {quantity(limit, unit)}{flag}")
    return out


def _gate_line(g: GateResult) -> str:
    verdict = "PASS" if g.passed else "FAIL"
    evidence = evidence_text(g)
    if evidence and g.bound is not None:  # bounded: the bound against the tolerance decided
        return f"  {g.name:<10} {g.value:>8.4f}  {evidence}  margin {g.margin + 0.0:+.4f}  {verdict}"
    cmp = COMPARE.get(g.name, "vs")
    tail = f"  ({evidence})" if evidence else ""
    return f"  {g.name:<10} {g.value:>8.4f} {cmp:>2} {g.threshold:<8.4f} margin {g.margin + 0.0:+.4f}  {verdict}{tail}"


def render_explanation(expl: Explanation) -> list[str]:
    x = expl
    lines = [f"{x.name}: {x.why}"]
    if x.kind == "genesis":
        lines.append(f"  genesis G{x.gen:03d} registered at seq {x.seq}, cycle {x.cycle}")
        lines.append(f"  source: {x.source or '-'}")
        lines.append(f"  archive: {x.archive or '-'}")
        lines.append(f"  archive_hash: {x.archive_hash or '-'}")
        lines.append(f"  model_hash: {x.model_hash or '-'}")
    else:
        lines.append(
            f"  window {x.window} (cycle {x.window_cycle}, HEAD {x.head_at_open}): "
            f"G{x.gen:03d} branch {x.branch}, strategy {x.strategy}, seed {x.seed}"
        )
        lines.append(f"  parent G(N): {x.parent}; stabilizer G(N-1): {x.stabilizer or '-'}")
        lines.append(f"  spawned at seq {x.seq}, cycle {x.cycle}")
        if x.budget is not None:
            lines.append("budget (used / limit):")
            lines += _budget_lines(x.budget, x.budget_used)
        lines.append(_training_line(x))
        if x.placement is not None:
            lines.append(f"trained on: {placement_text(x.placement)}")
        if x.gates:
            lines.append(f"gates (vs HEAD {x.baseline_generation or '-'}):")
            for g in x.gates:
                lines.append(_gate_line(g))
        if x.metrics is not None:
            lines.append(f"metrics: {_metrics_line(x.metrics)}")
        if x.baseline_metrics is not None:
            lines.append(f"HEAD baseline: {_metrics_line(x.baseline_metrics)}")
        if x.score is not None:
            head = "-" if x.baseline_score is None else f"{x.baseline_score:.4f}"
            gain = "" if x.improvement is None else f" (improvement {x.improvement:+.4f})"
            lines.append(f"score {x.score:.4f} vs HEAD {head}{gain}")
        if x.ranking:
            rank = f"{x.rank} of {x.ranked}" if x.rank else f"not ranked of {x.ranked}"
            lines.append(f"rank: {rank} ({' > '.join(x.ranking)})")
        if x.frozen is not None:
            z = x.frozen
            lines.append(f"frozen at seq {z.seq}: {z.status}")
            lines.append(f"  archive: {z.archive}")
            lines.append(f"  archive_hash: {z.archive_hash}")
            lines.append(f"  model_hash: {z.model_hash or '-'}")
            lines.append(f"  manifest_hash: {z.manifest_hash or '-'}")
        if x.window_outcome:
            lines.append(f"window {x.window}: {x.window_outcome}")
        if x.proposal_hash:
            lines.append(f"proposal: {x.proposal_hash}")
    if x.taught:
        lines.append("taught windows: " + ", ".join(str(w) for w in x.taught))
    if x.rollout:
        lines.append("rollout:")
        lines += [f"  seq {s.seq} cycle {s.cycle}: {s.summary}" for s in x.rollout]
    lines.append(f"HEAD now: {'yes' if x.head_now else 'no'}")
    return lines


def placement_text(p: Placement) -> str:
    """``ray node 3f2a9c1d0b7e (host 10.0.0.5), 0.66 CPUs, 2.0 GiB memory``."""
    where = f"{p.executor} node {p.node[:12]}" if p.executor != "local" else f"this runner's machine ({p.node})"
    if p.address:
        where += f" ({p.address})"
    given = [_count(p.cpus, "CPU")]
    if p.gpus:
        given.append(_count(p.gpus, "GPU"))
    if p.memory_gb:
        given.append(f"{p.memory_gb:g} GiB memory")
    return f"{where}, {', '.join(given)}"


def _count(n: float, what: str) -> str:
    return f"{n:g} {what}{'s' if n != 1 else ''}"


def _training_line(x: Explanation) -> str:
    tries = f"{x.attempts} attempt{'s' if x.attempts != 1 else ''}"
    if x.breach is not None:
        b = x.breach
        return f"training: {tries}, stopped by the {b.resource} budget: " + breach_text(
            b.resource, b.limit, b.used
        )
    if x.training_failure is not None:
        return f"training: {tries}, failed: {x.training_failure}"
    if x.training is not None:
        t = x.training
        return f"training: {tries}, {t.steps} steps, loss {t.loss_start:.4f} -> {t.loss_final:.4f}"
    return f"training: {tries}, not finished"
