"""GEN_CANDIDATES: the current window's students, with where each one stands.

``status_label`` is the one wording of a candidate's status shared by every projection:
``SPAWNED`` / ``TRAINING`` / ``TRAINED`` while in flight, then its verdict (STATUS.txt):
``PASS`` or ``FAIL - <reason>``.
"""

from __future__ import annotations

import msgspec

from evo_core.events import BudgetLimits, BudgetUsed, GateResult, Metrics
from evo_core.gates import BUDGET_RESOURCES
from evo_core.state import Candidate, CandidateStatus, State
from evo_core.window import verdict


class CandidateView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    window: int
    gen: int
    branch: str
    seed: int
    strategy: str
    parent: str
    stabilizer: str | None
    status: str  # status_label: SPAWNED, TRAINING, TRAINED, PASS, FAIL - <reason>
    phase: str  # the raw CandidateStatus value
    attempts: int
    rank: int | None  # 1 = best, once the window is ranked
    budget: BudgetLimits
    budget_used: BudgetUsed | None
    budget_fraction: dict[str, float]  # resource -> used / limit (1.0 = the whole budget)
    metrics: Metrics | None
    gates: tuple[GateResult, ...]
    score: float | None
    verdict: str  # STATUS.txt once frozen, else ""
    frozen: bool
    archive: str


def status_label(candidate: Candidate) -> str:
    if candidate.verdict:
        return candidate.verdict
    if candidate.status in (CandidateStatus.FAILED, CandidateStatus.EVALUATED):
        return verdict(candidate)
    return str(candidate.status.value).upper()


def budget_fraction(used: BudgetUsed | None, limits: BudgetLimits) -> dict[str, float]:
    if used is None:
        return {}
    out: dict[str, float] = {}
    for resource, (used_field, limit_field) in BUDGET_RESOURCES.items():
        limit = float(getattr(limits, limit_field))
        out[resource] = float(getattr(used, used_field)) / limit if limit else 0.0
    return out


def candidate_view(candidate: Candidate, ranking: tuple[str, ...] | None = None) -> CandidateView:
    c = candidate
    rank = ranking.index(c.id) + 1 if ranking and c.id in ranking else None
    return CandidateView(
        id=c.id,
        window=c.window,
        gen=c.gen,
        branch=c.branch,
        seed=c.seed,
        strategy=c.strategy,
        parent=c.parent,
        stabilizer=c.stabilizer,
        status=status_label(c),
        phase=c.status.value,
        attempts=c.attempts,
        rank=rank,
        budget=c.budget,
        budget_used=c.budget_used,
        budget_fraction=budget_fraction(c.budget_used, c.budget),
        metrics=c.metrics,
        gates=c.gates,
        score=c.score,
        verdict=c.verdict,
        frozen=c.frozen,
        archive=c.archive,
    )


def gen_candidates(state: State) -> list[CandidateView]:
    """The current (or last) window's candidates in branch order."""
    ranking = state.window.ranking if state.window is not None else None
    return [candidate_view(c, ranking) for c in state.window_candidates()]


def ranking_lines(state: State) -> list[str]:
    """The window's ranking as the spec prints it (best first; a failed candidate names its
    failed gates or its failure). Empty until the window is ranked."""
    window = state.window
    if window is None or window.ranking is None:
        return []
    lines = [f"CANDIDATE RANKINGS (window {window.number}, HEAD {window.head}, score {_score(window.baseline_score)}):"]
    for i, cid in enumerate(window.ranking, 1):
        c = state.candidates[cid]
        mark = "PASS" if c.passed else "FAIL"
        lines.append(f"  {i}. {c.id} [{c.strategy}]: {mark} (score={_score(c.score)})")
        if not c.passed:
            failed = [g.name for g in c.gates if not g.passed]
            lines.append(f"     Failed: {', '.join(failed) if failed else status_label(c)}")
    return lines


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
