"""One sample of every event type, and samples fitted to a state: events that name the state's
candidates, generations and pending proposal, so that ``evolve`` can apply them there (for the
tests that check ``evolve`` against the transition table, each outcome of each branch too)."""

from __future__ import annotations

from msgspec.structs import replace

from evo_core import events as ev
from evo_core.state import Phase, State
from evo_core.transitions import TRANSITIONS, Branch
from evo_core.values import BudgetUsed, Metrics, Proposal, TrainingStats
from tests.core.helpers import CFG

_M = Metrics(recall=0.5, generalize=0.5, tone_drift=0.0, law_violations=0)
_L = CFG.budget.limits()
SAMPLES: dict[type[ev.Event], ev.Event] = {
    ev.Heartbeat: ev.Heartbeat(cycle=1),
    ev.GenerationRegistered: ev.GenerationRegistered(generation="g"),
    ev.WindowOpened: ev.WindowOpened(window=1, cycle=10, heartbeat_cycle=10, period=10, gen=1, head="g"),
    ev.WindowSkipped: ev.WindowSkipped(first_cycle=10, last_cycle=10, count=1, heartbeat_cycle=10, reason="r"),
    ev.CandidateSpawned: ev.CandidateSpawned(window=1, candidate="c", gen=1, branch="a", seed=1, strategy="s",
                                             parent="g", stabilizer=None, budget=_L),
    ev.TrainingStarted: ev.TrainingStarted(candidate="c"),
    ev.TrainingFinished: ev.TrainingFinished(candidate="c", stats=TrainingStats(), budget_used=BudgetUsed()),
    ev.TrainingFailed: ev.TrainingFailed(candidate="c", reason="r"),
    ev.BudgetBreached: ev.BudgetBreached(candidate="c", resource="steps", limit=1, used=2, budget_used=BudgetUsed()),
    ev.BaselineEvaluated: ev.BaselineEvaluated(window=1, generation="g", metrics=_M, score=0.5),
    ev.GateEvaluated: ev.GateEvaluated(candidate="c", metrics=_M, gates=(), passed=False, score=0.5),
    ev.CandidatesRanked: ev.CandidatesRanked(window=1, ranking=("c",)),
    ev.CandidateFrozen: ev.CandidateFrozen(candidate="c", status="PASS", archive="a", archive_hash="h"),
    ev.Proposed: ev.Proposed(
        proposal=Proposal(window=1, candidate="c", current_head="g", reason="r", score=1.0, head_score=0.5,
                             improvement=0.5, metrics=_M, gates=(), model_hash="", manifest_hash=""),
        proposal_hash="a" * 64),
    ev.NoPromotion: ev.NoPromotion(window=1, reason="r"),
    ev.Approved: ev.Approved(proposal_hash="a" * 64, operator="o"),
    ev.Rejected: ev.Rejected(proposal_hash="a" * 64, operator="o", reason="r"),
    ev.ApprovalRefused: ev.ApprovalRefused(action="approve", proposal_hash="a" * 64, operator="o", key_id="k",
                                           reason="r"),
    ev.AutonomyChanged: ev.AutonomyChanged(enabled=True, operator="o", key_id="k", signature="s", nonce=0),
    ev.ShadowStarted: ev.ShadowStarted(generation="c", start_cycle=1, until_cycle=2, traffic_percent=10.0),
    ev.ShadowCompared: ev.ShadowCompared(generation="c", cycle=1, exact=True, similarity=1.0),
    ev.ShadowCompleted: ev.ShadowCompleted(generation="c", outcome="passed", samples=1, parity=1.0, threshold=0.9),
    ev.Promoted: ev.Promoted(generation="c", previous_head="g", proposal_hash="a" * 64, cycle=1, burn_in_until=2),
    ev.AnswerObserved: ev.AnswerObserved(generation="c", cycle=1, error=False, law_violation=False),
    ev.BurnInExtended: ev.BurnInExtended(generation="c", answers=1, min_answers=2, until_cycle=3),
    ev.BurnInPassed: ev.BurnInPassed(generation="c"),
    ev.BurnInFailed: ev.BurnInFailed(generation="c", reason="r"),
    ev.RolledBack: ev.RolledBack(from_generation="c", to_generation="g", reason="r"),
    ev.WorkInterrupted: ev.WorkInterrupted(actions=("TrainCandidate:c",), signal="SIGINT"),
    ev.KeyTrusted: ev.KeyTrusted(key_id="k", public="ab" * 32, operator="o"),
    ev.KeyRevoked: ev.KeyRevoked(key_id="k", operator="o", reason="r", signer="k", signature="s"),
}


def fitted(state: State, event_type: type[ev.Event]) -> list[ev.Event]:
    """Samples of ``event_type`` that name what ``state`` holds; for the events a branch of the
    table looks at, one per outcome (a shadow passed, failed or inconclusive; a refusal of the
    pending approval, of another proposal, of a rejection)."""
    sample = SAMPLES[event_type]
    cids = list(state.window.candidates) if state.window and state.window.candidates else list(state.candidates)
    cid = cids[0] if cids else "c"
    pending = state.proposal.hash if state.proposal else "a" * 64
    proposed = state.proposal.proposal.candidate if state.proposal else cid
    back = state.promoted[0] if state.promoted else "g"
    match sample:
        case ev.Proposed():
            return [replace(sample, proposal=replace(sample.proposal, candidate=cid), proposal_hash=pending)]
        case ev.Promoted() | ev.ShadowStarted():
            return [replace(sample, generation=proposed)]
        case ev.RolledBack():
            return [replace(sample, from_generation=state.head or "c", to_generation=back)]
        case ev.ShadowCompleted():
            return [replace(sample, generation=proposed, outcome=o) for o in ("passed", "failed", "inconclusive")]
        case ev.ApprovalRefused():
            refusal = replace(sample, proposal_hash=pending)
            return [refusal, replace(refusal, proposal_hash="0" * 64), replace(refusal, action="reject")]
        case ev.Approved() | ev.Rejected():
            return [replace(sample, proposal_hash=pending)]
    if "candidate" in sample.__struct_fields__:
        return [replace(sample, candidate=cid)]
    return [sample]


def table_says(state: State, event: ev.Event) -> Phase:
    """The phase the transition table leads ``event`` to from ``state`` (which accepts it)."""
    move = TRANSITIONS[state.phase][type(event)]
    if isinstance(move, Branch):
        return move.then if move.guard(state, event) else move.otherwise
    return move
