"""The transition table: data you can print, enforced by ``decide`` on every event it emits, and
the only place ``evolve`` learns where an event leads."""

from __future__ import annotations

import functools
import itertools

import pytest

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.decide import decide
from evo_core.errors import CorruptHistory, DomainError, IllegalTransition
from evo_core.evolve import evolve, fold
from evo_core.state import Phase, State
from evo_core.transitions import (
    ACCEPTS,
    TRANSITIONS,
    Branch,
    accepts,
    edges,
    ensure_accepts,
    next_phase,
    render_mermaid,
    render_table,
)
from evo_core.values import BudgetUsed, TrainingStats
from tests.core.helpers import SIGNED, BASELINE, BETTER, CFG, GENESIS, GOOD, Driver, snapshot
from tests.core.samples import SAMPLES, fitted, table_says


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


def test_accepts_is_the_table_s_rows() -> None:
    assert set(TRANSITIONS) == set(Phase)
    for phase, row in TRANSITIONS.items():
        assert ACCEPTS[phase] == set(row)
        for move in row.values():
            assert isinstance(move, Phase | Branch)
            if isinstance(move, Branch):
                assert move.when and move.then is not move.otherwise


def test_the_diagram_draws_every_move_that_leaves_a_phase() -> None:
    drawn = edges()
    for src, label, dst in drawn:
        assert ev.EVENT_TYPES[label.split(" ")[0]] in ACCEPTS[src], (src, label)
    leaving = {(src, event.__name__, move) for src, row in TRANSITIONS.items() for event, move in row.items()
               if isinstance(move, Phase) and move is not src}
    assert leaving <= set(drawn)
    assert (Phase.WINDOW, "RolledBack", Phase.WINDOW) in drawn  # it leaves every other phase
    assert (Phase.SHADOW, "ShadowCompleted (failed)", Phase.IDLE) in drawn
    assert (Phase.WINDOW, "Heartbeat", Phase.WINDOW) not in drawn


def test_the_table_renders_for_the_docs() -> None:
    table = render_table()
    assert table.count("\n") == len(Phase) + 1
    for phase in Phase:
        assert f"`{phase.value}`" in table
    mermaid = render_mermaid()
    assert mermaid.startswith("stateDiagram-v2") and mermaid.count("-->") == len(edges()) + 1


def test_decide_checks_its_events_against_the_table() -> None:
    """A (hand-made, inconsistent) state whose handler would emit an event its phase does not
    accept: decide raises IllegalTransition instead of returning it."""
    d = Driver().genesis()
    g1 = d.promote()
    state = fold([], d.state)
    odd = State(**{f: getattr(state, f) for f in state.__struct_fields__ if f != "phase"}, phase=Phase.EMPTY)
    before = snapshot(odd)
    with pytest.raises(IllegalTransition, match="RolledBack"):
        decide(odd, cmd.Rollback(**SIGNED, operator="op", to=GENESIS))
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
        cmd.StartTraining(candidate=c), cmd.FinishTraining(candidate=c, stats=TrainingStats(), budget_used=BudgetUsed()),
        cmd.FailTraining(candidate=c, reason="r"),
        cmd.BreachBudget(candidate=c, resource="steps", limit=1.0, used=2.0, budget_used=BudgetUsed()),
        cmd.RecordBaseline(metrics=BASELINE, config=CFG), cmd.RecordEvaluation(candidate=c, metrics=GOOD, config=CFG),
        cmd.Rank(), cmd.Freeze(candidate=c, archive="a", archive_hash="h"), cmd.Propose(proposal=None),
        cmd.Approve(**SIGNED, operator="o"), cmd.Reject(**SIGNED, operator="o", reason="r"), cmd.Rollback(**SIGNED, operator="o"),
        cmd.Rollback(**SIGNED, operator="o", to=GENESIS), cmd.StartShadow(config=CFG),
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


# ---------------------------------------------------------------- evolve reads the table


@functools.cache
def _lived_states() -> list[State]:
    """Every state of a life that passes through each phase: promotions, a failed window, an
    approved proposal rolled back (one state per distinct snapshot)."""
    d = Driver().genesis()
    d.promote()
    d.window(["fail", "breach", "fail"])
    d.promote([BETTER, "fail", GOOD])
    d.window([GOOD, BETTER, "fail"])
    d.approve()
    d.rollback()
    state = State()
    states = {snapshot(state): state}
    for event in d.events:
        state = evolve(state, event)
        states.setdefault(snapshot(state), state)
    return list(states.values())


def test_evolve_leads_every_accepted_event_where_the_table_says() -> None:
    """For every (phase, event) pair the table accepts, and each outcome of each branch: the phase
    after ``evolve`` is the table's."""
    reached: set[tuple[Phase, type[ev.Event], Phase]] = set()
    for state in _lived_states():
        for event_type in ACCEPTS[state.phase]:
            for event in fitted(state, event_type):
                try:
                    after = evolve(state, event)
                except CorruptHistory:
                    continue  # it names what this state lacks (a shadow to complete, say)
                assert after.phase is table_says(state, event) is next_phase(state, event), (state.phase, event)
                reached.add((state.phase, event_type, after.phase))
    wanted = {(phase, event, to) for phase, row in TRANSITIONS.items() for event, move in row.items()
              for to in ((move.then, move.otherwise) if isinstance(move, Branch) else (move,))}
    assert reached == wanted


@pytest.mark.parametrize("event_type", list(SAMPLES))
def test_evolve_stays_total_outside_the_table(event_type: type[ev.Event]) -> None:
    """An event its phase does not accept (a record written out of band): evolve applies it or
    raises CorruptHistory, never IllegalTransition, and the phase stays where it was."""
    for state in _lived_states():
        if event_type in ACCEPTS[state.phase]:
            continue
        for event in fitted(state, event_type):
            try:
                after = evolve(state, event)
            except CorruptHistory:
                continue
            assert after.phase is state.phase is next_phase(state, event)
