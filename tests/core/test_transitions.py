"""The transition table: data you can print, enforced by ``decide`` on every event it emits."""

from __future__ import annotations

import itertools

import pytest

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.decide import decide
from evo_core.errors import DomainError, IllegalTransition
from evo_core.evolve import fold
from evo_core.state import Phase, State
from evo_core.transitions import ACCEPTS, TRANSITIONS, accepts, ensure_accepts, render_mermaid, render_table
from tests.core.helpers import SIGNED, BASELINE, BETTER, CFG, GENESIS, GOOD, Driver, snapshot

_M = ev.Metrics(recall=0.5, generalize=0.5, tone_drift=0.0, law_violations=0)
_L = CFG.budget.limits()
SAMPLES: dict[type[ev.Event], ev.Event] = {
    ev.Heartbeat: ev.Heartbeat(cycle=1),
    ev.GenerationRegistered: ev.GenerationRegistered(generation="g"),
    ev.WindowOpened: ev.WindowOpened(window=1, cycle=10, heartbeat_cycle=10, period=10, gen=1, head="g"),
    ev.WindowSkipped: ev.WindowSkipped(first_cycle=10, last_cycle=10, count=1, heartbeat_cycle=10, reason="r"),
    ev.CandidateSpawned: ev.CandidateSpawned(window=1, candidate="c", gen=1, branch="a", seed=1, strategy="s",
                                             parent="g", stabilizer=None, budget=_L),
    ev.TrainingStarted: ev.TrainingStarted(candidate="c"),
    ev.TrainingFinished: ev.TrainingFinished(candidate="c", stats=ev.TrainingStats(), budget_used=ev.BudgetUsed()),
    ev.TrainingFailed: ev.TrainingFailed(candidate="c", reason="r"),
    ev.BudgetBreached: ev.BudgetBreached(candidate="c", resource="steps", limit=1, used=2, budget_used=ev.BudgetUsed()),
    ev.BaselineEvaluated: ev.BaselineEvaluated(window=1, generation="g", metrics=_M, score=0.5),
    ev.GateEvaluated: ev.GateEvaluated(candidate="c", metrics=_M, gates=(), passed=False, score=0.5),
    ev.CandidatesRanked: ev.CandidatesRanked(window=1, ranking=("c",)),
    ev.CandidateFrozen: ev.CandidateFrozen(candidate="c", status="PASS", archive="a", archive_hash="h"),
    ev.Proposed: ev.Proposed(
        proposal=ev.Proposal(window=1, candidate="c", current_head="g", reason="r", score=1.0, head_score=0.5,
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
}


def test_samples_cover_every_event_type() -> None:
    assert set(SAMPLES) == set(ev.EVENT_TYPES.values())


def test_every_phase_is_in_the_table_and_every_event_is_accepted_somewhere() -> None:
    assert set(ACCEPTS) == set(Phase)
    accepted = set().union(*ACCEPTS.values())
    assert accepted == set(ev.EVENT_TYPES.values())


def test_heartbeats_and_skips_are_accepted_in_every_phase() -> None:
    for phase in Phase:
        assert accepts(phase, ev.Heartbeat(cycle=1)) and accepts(phase, SAMPLES[ev.WindowSkipped])


@pytest.mark.parametrize("phase, event_type", list(itertools.product(Phase, SAMPLES)))
def test_ensure_accepts_raises_exactly_outside_the_table(phase: Phase, event_type: type[ev.Event]) -> None:
    event = SAMPLES[event_type]
    if event_type in ACCEPTS[phase]:
        ensure_accepts(phase, event)
    else:
        with pytest.raises(IllegalTransition, match=f"{event_type.__name__} is not allowed in phase '{phase.value}'"):
            ensure_accepts(phase, event)


def test_transitions_only_name_events_their_source_phase_accepts() -> None:
    for src, label, dst in TRANSITIONS:
        names = [part.split(" ")[0] for part in label.split(" + ")]
        assert ev.EVENT_TYPES[names[0]] in ACCEPTS[src], (src, label)
        assert src is not dst


def test_the_table_renders_for_the_docs() -> None:
    table = render_table()
    assert table.count("\n") == len(Phase) + 1
    for phase in Phase:
        assert f"`{phase.value}`" in table
    mermaid = render_mermaid()
    assert mermaid.startswith("stateDiagram-v2") and mermaid.count("-->") == len(TRANSITIONS) + 1


def test_decide_checks_its_events_against_the_table() -> None:
    """A (hand-made, inconsistent) state whose handler would emit an event its phase does not
    accept: decide raises IllegalTransition instead of returning it."""
    d = Driver().genesis()
    g1 = d.promote()
    state = fold([], d.state)
    odd = State(**{f: getattr(state, f) for f in state.__struct_fields__ if f != "phase"}, phase=Phase.EMPTY)
    before = snapshot(odd)
    with pytest.raises(IllegalTransition, match="RolledBack"):
        decide(odd, cmd.Rollback(operator="op", to=GENESIS))
    assert snapshot(odd) == before and g1


def _reachable_states() -> dict[Phase, State]:
    out: dict[Phase, State] = {Phase.EMPTY: State()}
    d = Driver().genesis()
    out[Phase.IDLE] = d.state
    d.open_window()
    out[Phase.WINDOW] = d.state
    d.do(cmd.SpawnCandidates(config=CFG))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    for cid, o in zip(d.candidates(), (GOOD, BETTER, "fail")):
        d.train(cid, o)
    d.do(cmd.Rank())
    d.freeze_all()
    d.conclude()
    out[Phase.PROPOSED] = d.state
    d.approve()
    out[Phase.APPROVED] = d.state
    d.do(cmd.StartShadow(config=CFG))
    out[Phase.SHADOW] = d.state
    d.do(cmd.RecordShadow(exact=True, similarity=1.0))
    d.do(cmd.RecordShadow(exact=True, similarity=1.0))
    assert d.state.shadow is not None
    d.beat_to(d.state.shadow.until_cycle)
    d.do(cmd.CompleteShadow(config=CFG))
    out[Phase.BURN_IN] = d.state
    assert {p: s.phase for p, s in out.items()} == {p: p for p in Phase}
    return out


def _menu(state: State) -> list[cmd.Command]:
    cands = list(state.window.candidates) if state.window and state.window.candidates else ["nobody"]
    c = cands[0]
    return [
        cmd.Beat(period=10), cmd.RegisterGenesis(generation="again"), cmd.SpawnCandidates(config=CFG),
        cmd.StartTraining(candidate=c), cmd.FinishTraining(candidate=c, stats=ev.TrainingStats(), budget_used=ev.BudgetUsed()),
        cmd.FailTraining(candidate=c, reason="r"),
        cmd.BreachBudget(candidate=c, resource="steps", limit=1.0, used=2.0, budget_used=ev.BudgetUsed()),
        cmd.RecordBaseline(metrics=BASELINE, config=CFG), cmd.RecordEvaluation(candidate=c, metrics=GOOD, config=CFG),
        cmd.Rank(), cmd.Freeze(candidate=c, archive="a", archive_hash="h"), cmd.Propose(proposal=None),
        cmd.Approve(**SIGNED, operator="o"), cmd.Reject(**SIGNED, operator="o", reason="r"), cmd.Rollback(operator="o"),
        cmd.Rollback(operator="o", to=GENESIS), cmd.StartShadow(config=CFG),
        cmd.RecordShadow(exact=True, similarity=1.0), cmd.CompleteShadow(config=CFG),
        cmd.CompleteBurnIn(config=CFG), cmd.RecordAnswer(error=False, law_violation=False),
    ]


@pytest.mark.parametrize("phase", list(Phase))
def test_every_command_in_every_phase_is_legal_by_the_table_or_refused_unchanged(phase: Phase) -> None:
    state = _reachable_states()[phase]
    legal = 0
    for command in _menu(state):
        before = snapshot(state)
        try:
            events = decide(state, command)
        except DomainError:
            assert snapshot(state) == before
            continue
        legal += 1
        s = state
        for e in events:
            assert type(e) in ACCEPTS[s.phase], (phase, command, e)
            s = fold([e], s)
        assert snapshot(state) == before
    assert legal >= 1  # at least a heartbeat
