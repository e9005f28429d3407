"""Property tests of the pure core: gates, score, window coverage, replay, random commands."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import EvoConfig
from evo_core.decide import decide
from evo_core.errors import CorruptHistory, DomainError
from evo_core.evolve import evolve, fold
from evo_core.gates import evaluate_gates, score
from evo_core.state import Phase, State
from evo_core.transitions import ACCEPTS
from evo_core.values import BudgetUsed, Metrics, TrainingStats
from tests import operator_key
from tests.core.helpers import BASELINE, Driver, check_history, check_invariants, drain, snapshot
from tests.core.samples import fitted, table_says
from tests.core.strategies import P, PCFG, command

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
metric = st.builds(Metrics, recall=unit, generalize=unit, tone_drift=unit, law_violations=st.integers(0, 3))
LIMITS = EvoConfig().budget.limits()
used = st.builds(
    BudgetUsed,
    steps=st.integers(0, 3000),
    walltime_minutes=st.floats(0, 90),
    gpu_memory_gb=st.floats(0, 20),
    tokens_processed=st.integers(0, 20_000_000),
    disk_gb=st.floats(0, 8),
)
thresholds = st.tuples(st.floats(0, 0.2), st.floats(0, 0.2), st.floats(0, 1))


def _gates(m: Metrics, head: Metrics, u: BudgetUsed, t: tuple[float, float, float]) -> dict[str, bool]:
    eps, delta, theta = t
    gates = evaluate_gates(m, head, u, LIMITS, epsilon=eps, delta=delta, theta=theta, confidence=0.95)
    return {g.name: g.passed for g in gates}


@given(metric, metric, used, thresholds, unit, unit, unit, st.integers(0, 3), st.floats(0, 1))
def test_improving_any_metric_never_turns_a_pass_into_a_fail(
    m: Metrics, head: Metrics, u: BudgetUsed, t: tuple[float, float, float],
    d_recall: float, d_gen: float, d_tone: float, d_laws: int, shrink: float,
) -> None:
    better = Metrics(
        recall=m.recall + d_recall,
        generalize=m.generalize + d_gen,
        tone_drift=m.tone_drift - d_tone,
        law_violations=max(0, m.law_violations - d_laws),
    )
    less = BudgetUsed(
        steps=int(u.steps * shrink), walltime_minutes=u.walltime_minutes * shrink,
        gpu_memory_gb=u.gpu_memory_gb * shrink, tokens_processed=int(u.tokens_processed * shrink),
        disk_gb=u.disk_gb * shrink,
    )
    before, after = _gates(m, head, u, t), _gates(better, head, less, t)
    for name, ok in before.items():
        assert not ok or after[name], name
    assert score(better, (0.4, 0.4, 0.2)) >= score(m, (0.4, 0.4, 0.2)) - 1e-12


@given(metric, metric, used, thresholds)
def test_a_worse_head_never_makes_a_candidate_fail(m: Metrics, head: Metrics, u: BudgetUsed,
                                                   t: tuple[float, float, float]) -> None:
    weaker = Metrics(recall=head.recall / 2, generalize=head.generalize / 2, tone_drift=head.tone_drift,
                        law_violations=head.law_violations)
    before, after = _gates(m, head, u, t), _gates(m, weaker, u, t)
    assert all(after[n] for n, ok in before.items() if ok)


def _evaluable() -> Driver:
    d = Driver(config=PCFG).genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=PCFG))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=PCFG))
    cid = d.candidates()[0]
    d.do(cmd.StartTraining(candidate=cid))
    d.do(cmd.FinishTraining(candidate=cid, stats=TrainingStats(), budget_used=BudgetUsed(steps=5)))
    return d


EVALUABLE = _evaluable()


@given(metric)
def test_a_failing_gate_always_blocks_passed(m: Metrics) -> None:
    state = EVALUABLE.state
    cid = EVALUABLE.candidates()[0]
    (event,) = decide(state, cmd.RecordEvaluation(candidate=cid, metrics=m, config=PCFG))
    assert isinstance(event, ev.GateEvaluated)
    assert event.passed == all(g.passed for g in event.gates)
    g = PCFG.gates
    expected = (m.recall >= BASELINE.recall - g.epsilon and m.generalize >= BASELINE.generalize + g.delta
                and m.tone_drift <= g.theta and m.law_violations == 0)
    assert event.passed == expected
    assert math.isclose(event.score, 0.4 * m.recall + 0.4 * m.generalize + 0.2 * (1 - m.tone_drift))


weights = st.tuples(unit, unit, unit)


@given(metric, weights, weights, st.floats(-3, 3), st.floats(-3, 3))
def test_score_is_linear_in_the_weights(m: Metrics, w1: tuple[float, float, float],
                                        w2: tuple[float, float, float], a: float, b: float) -> None:
    combo = tuple(a * x + b * y for x, y in zip(w1, w2))
    assert math.isclose(score(m, combo), a * score(m, w1) + b * score(m, w2), abs_tol=1e-9)
    assert math.isclose(score(m, w1), w1[0] * m.recall + w1[1] * m.generalize + w1[2] * (1 - m.tone_drift),
                        abs_tol=1e-12)


# ---------------------------------------------------------------- window coverage

step = st.one_of(
    st.tuples(st.just("beat"), st.integers(1, 40), st.integers(1, 4)),
    st.tuples(st.just("conclude"), st.just(0), st.just(0)),
    st.tuples(st.just("genesis"), st.just(0), st.just(0)),
)


def _conclude(d: Driver) -> None:
    """End the evolution in progress: every candidate fails, no promotion."""
    d.do(cmd.SpawnCandidates(config=d.config))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=d.config))
    for cid in d.candidates():
        d.train(cid, "fail")
    d.do(cmd.Rank())
    d.freeze_all()
    d.conclude()


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 15), st.lists(step, max_size=30))
def test_every_multiple_is_covered_exactly_once(period: int, steps: list[tuple[str, int, int]]) -> None:
    config = PCFG.model_copy(update={"evo_period_cycles": period, "max_concurrent_experiments": 1})
    d = Driver(config=config)
    for kind, jump, count in steps:
        if kind == "beat":
            d.beat(cycle=d.state.cycle + jump, count=count)
        elif kind == "conclude" and d.state.phase is Phase.WINDOW:
            _conclude(d)
        elif kind == "genesis" and d.state.phase is Phase.EMPTY:
            d.genesis()
        check_invariants(d.state)
    note(f"events: {[e for e in d.events if not isinstance(e, ev.Heartbeat)]}")
    check_history(d.events, period)  # coverage: every multiple once, in order; counts add up
    opened = [e for e in d.events if isinstance(e, ev.WindowOpened)]
    assert [e.window for e in opened] == list(range(1, len(opened) + 1)) and d.state.windows == len(opened)
    # windows never overlap: between two openings the first one concluded
    state = State()
    for e in d.events:
        if isinstance(e, ev.WindowOpened):
            assert state.phase is Phase.IDLE
        if isinstance(e, ev.WindowSkipped):
            assert ("no generation" in e.reason) == (state.phase is Phase.EMPTY)
        state = fold([e], state)


# ---------------------------------------------------------------- random command sequences


def _run(data: st.DataObject, max_steps: int) -> tuple[State, list[ev.Event]]:
    events: list[ev.Event] = decide(State(), operator_key.pin())  # the workspace's operator key
    state = fold(events)
    for _ in range(data.draw(st.integers(min(20, max_steps), max_steps), label="steps")):
        c = data.draw(command(state), label="command")
        before = snapshot(state)
        try:
            out = decide(state, c)
        except DomainError as exc:
            note(f"refused {c!r}: {type(exc).__name__}")
            assert snapshot(state) == before  # illegal: nothing changed
            assert str(exc) and "\n" not in str(exc)
            continue
        assert snapshot(state) == before  # decide is pure
        note(f"{c!r} -> {[type(e).__name__ for e in out]}")
        state = fold(out, state)
        events += out
        check_invariants(state)
    return state, events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_commands_keep_every_invariant(data: st.DataObject) -> None:
    state, events = _run(data, 80)
    check_history(events, P)
    assert fold(events) == state
    drain(state, PCFG)  # and the evolution in progress can always be ended


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_replay_is_deterministic_and_folds_compose(data: st.DataObject) -> None:
    state, events = _run(data, 50)
    assert fold(events) == fold(events) == state
    cut = data.draw(st.integers(0, len(events)), label="cut")
    assert fold(events[cut:], fold(events[:cut])) == state
    assert snapshot(fold(events[cut:], fold(events[:cut]))) == snapshot(state)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_evolve_leads_where_the_transition_table_says(data: st.DataObject) -> None:
    """Along a random history, and for one of every event the last phase accepts (each outcome
    of a branch): the phase after ``evolve`` is the one the table names."""
    _, events = _run(data, 40)
    state = State()
    for event in events:
        after = evolve(state, event)
        assert after.phase is table_says(state, event), (state.phase, event)
        state = after
    for event_type in sorted(ACCEPTS[state.phase], key=lambda t: t.__name__):
        for event in fitted(state, event_type):
            try:
                after = evolve(state, event)
            except CorruptHistory:  # it names what this state lacks
                continue
            note(f"{state.phase} + {event!r}")
            assert after.phase is table_says(state, event)
