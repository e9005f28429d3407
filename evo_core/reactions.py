"""``reactions(state) -> list[action]``: which side effects are due now. Pure.

The runner performs each action through an adapter and appends its outcome through
``decide``. Actions are keyed by ids the events carry (window number, candidate id), so after
a crash the runner replays, asks again and gets exactly what is still missing: nothing runs
twice to completion and nothing is lost. A candidate found TRAINING on replay was interrupted
and is due again (its next TrainingStarted counts the attempt).
"""

from __future__ import annotations

import msgspec

from evo_core.state import CandidateStatus, Phase, State


class Action(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Base of every action."""


class SpawnCandidates(Action, frozen=True):
    window: int


class EvaluateBaseline(Action, frozen=True):
    window: int
    generation: str


class TrainCandidate(Action, frozen=True):
    candidate: str


class EvaluateCandidate(Action, frozen=True):
    candidate: str


class RankCandidates(Action, frozen=True):
    window: int


class FreezeCandidate(Action, frozen=True):
    candidate: str


class ConcludeWindow(Action, frozen=True):
    """Propose the best candidate, or record why there is no promotion."""

    window: int


class SelfApprove(Action, frozen=True):
    """Autonomy is on: the scheduler approves the pending proposal itself (the runner first
    checks the operator's signed grant and the config's ``approval.autonomous``)."""

    proposal_hash: str


class StartShadow(Action, frozen=True):
    """Start the shadow phase (the runner first verifies the approval's signature and
    withdraws an approval that does not verify: ``ApprovalRefused``)."""

    generation: str


class CompleteShadow(Action, frozen=True):
    generation: str


class CompleteBurnIn(Action, frozen=True):
    generation: str


def _window_actions(state: State) -> list[Action]:
    window = state.window
    assert window is not None
    if not window.candidates:
        return [SpawnCandidates(window=window.number)]
    cands = state.window_candidates()
    due: list[Action] = []
    if window.baseline is None:
        due.append(EvaluateBaseline(window=window.number, generation=window.head))
    for c in cands:
        if c.status in (CandidateStatus.SPAWNED, CandidateStatus.TRAINING):
            due.append(TrainCandidate(candidate=c.id))
        elif c.status is CandidateStatus.TRAINED and window.baseline is not None:
            due.append(EvaluateCandidate(candidate=c.id))
    if due:
        return due
    if window.ranking is None:
        return [RankCandidates(window=window.number)]
    unfrozen: list[Action] = [FreezeCandidate(candidate=c.id) for c in cands if not c.frozen]
    return unfrozen or [ConcludeWindow(window=window.number)]


def reactions(state: State) -> list[Action]:
    if state.phase is Phase.WINDOW:
        return _window_actions(state)
    if state.phase is Phase.PROPOSED and state.proposal is not None and state.autonomy:
        return [SelfApprove(proposal_hash=state.proposal.hash)]
    if state.phase is Phase.APPROVED and state.proposal is not None:
        return [StartShadow(generation=state.proposal.proposal.candidate)]
    if state.phase is Phase.SHADOW and state.shadow is not None:
        if state.cycle >= state.shadow.until_cycle:
            return [CompleteShadow(generation=state.shadow.generation)]
    if state.phase is Phase.BURN_IN and state.burn_in is not None:
        if state.cycle >= state.burn_in.until_cycle:
            return [CompleteBurnIn(generation=state.burn_in.generation)]
    return []
