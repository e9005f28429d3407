"""Pure rules of one evolution window: naming, branch plans, verdicts, ranking, the proposal."""

from __future__ import annotations

from evo_core.errors import InvalidInput
from evo_core.gates import failed_gates
from evo_core.state import Candidate, CandidateStatus, State
from evo_core.values import Proposal


def genesis_name(agent: str) -> str:
    return f"{agent}-G000-genesis"


def candidate_name(agent: str, gen: int, branch: str, cycle: int) -> str:
    return f"{agent}-G{gen:03d}-{branch}-c{cycle}"


def branch_letter(index: int) -> str:
    """a, b, ..., z, then aa, ab, ... (the hard cap keeps this short)."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(97 + rem) + letters
    return letters


def plan_branches(
    count: int, seed_base: int, strategies: tuple[str, ...]
) -> list[tuple[str, int, str]]:
    """(branch, seed, strategy) per branch: seeds seed_base + i (spec: 424242 + i), strategies
    in config order, cycling when there are more branches than strategies."""
    if not strategies:
        raise InvalidInput("at least one data strategy is needed")
    return [
        (branch_letter(i), seed_base + i, strategies[i % len(strategies)]) for i in range(count)
    ]


def verdict(candidate: Candidate) -> str:
    """STATUS.txt of a candidate: ``PASS`` or ``FAIL - <reason>``."""
    if candidate.status is CandidateStatus.FAILED:
        return f"FAIL - {candidate.failure}"
    if candidate.status is not CandidateStatus.EVALUATED:
        raise InvalidInput(f"{candidate.id} has no verdict yet ({candidate.status.value})")
    if candidate.passed:
        return "PASS"
    return "FAIL - " + ", ".join(f"{name} gate" for name in failed_gates(candidate.gates))


def rank(candidates: list[Candidate]) -> tuple[str, ...]:
    """Best first: passing by score, then evaluated failures by score, then training failures.
    Ties go to the earlier branch."""

    def key(c: Candidate) -> tuple[int, float, int, str]:
        group = 0 if c.passed else (1 if c.status is CandidateStatus.EVALUATED else 2)
        return (group, -(c.score or 0.0), len(c.branch), c.branch)

    return tuple(c.id for c in sorted(candidates, key=key))


def draft_proposal(state: State) -> tuple[Proposal | None, str]:
    """The proposal the window concludes with, or None and the no-promotion reason.

    The best passing candidate is proposed only if it beats HEAD's score (improvement > 0).
    """
    window = state.window
    if window is None or window.ranking is None:
        raise InvalidInput("the window is not ranked yet")
    if state.head != window.head:
        return None, (
            f"HEAD moved during the window (now {state.head}); its candidates were bred from "
            f"{window.head}"
        )
    ranked = [state.candidates[c] for c in window.ranking]
    passing = [c for c in ranked if c.passed]
    if not passing:
        return None, "no candidate passed the gates"
    best = passing[0]
    assert best.score is not None and best.metrics is not None
    head_score = window.baseline_score
    assert head_score is not None
    improvement = best.score - head_score
    if improvement <= 0:
        return None, (
            f"best candidate {best.id} does not beat HEAD "
            f"(score {best.score:.4f} vs {head_score:.4f})"
        )
    proposal = Proposal(
        window=window.number,
        candidate=best.id,
        current_head=window.head,
        reason="best candidate passed all gates and beats HEAD",
        score=best.score,
        head_score=head_score,
        improvement=improvement,
        metrics=best.metrics,
        gates=best.gates,
        model_hash=best.model_hash,
        manifest_hash=best.manifest_hash,
    )
    return proposal, ""
