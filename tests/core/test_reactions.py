"""``reactions``: what side effects are due now. After a crash the runner asks again and gets
exactly what is still missing."""

from __future__ import annotations

from evo_core import commands as cmd
from evo_core import reactions as r
from evo_core.evolve import fold
from evo_core.reactions import reactions
from evo_core.state import State
from evo_core.values import BudgetUsed, TrainingStats
from tests.core.helpers import BASELINE, BETTER, CFG, GENESIS, GOOD, Driver


def test_nothing_is_due_when_empty_or_idle() -> None:
    assert reactions(State()) == []
    d = Driver().genesis()
    d.beat_to(9)
    assert reactions(d.state) == []


def test_a_window_walks_through_its_actions_in_order() -> None:
    d = Driver().genesis()
    d.open_window()
    assert reactions(d.state) == [r.SpawnCandidates(window=1)]
    d.do(cmd.SpawnCandidates(config=CFG))
    a, b, c = d.candidates()
    assert reactions(d.state) == [
        r.EvaluateBaseline(window=1, generation=GENESIS),
        r.TrainCandidate(candidate=a),
        r.TrainCandidate(candidate=b),
        r.TrainCandidate(candidate=c),
    ]
    d.do(cmd.StartTraining(candidate=a))
    # a crash here: replay, ask again: a is still due (its next start counts attempt 2)
    assert r.TrainCandidate(candidate=a) in reactions(fold(d.events))
    d.train(b, "fail")
    d.do(cmd.FinishTraining(candidate=a, stats=TrainingStats(), budget_used=BudgetUsed()))
    # a is trained but HEAD's baseline is missing: evaluate the baseline first
    assert reactions(d.state) == [r.EvaluateBaseline(window=1, generation=GENESIS), r.TrainCandidate(candidate=c)]
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    assert reactions(d.state) == [r.EvaluateCandidate(candidate=a), r.TrainCandidate(candidate=c)]
    d.do(cmd.RecordEvaluation(candidate=a, metrics=GOOD, config=CFG))
    d.train(c, BETTER)
    assert reactions(d.state) == [r.RankCandidates(window=1)]
    d.do(cmd.Rank())
    assert reactions(d.state) == [r.FreezeCandidate(candidate=x) for x in (a, b, c)]
    d.freeze_all()
    assert reactions(d.state) == [r.ConcludeWindow(window=1)]
    d.conclude()
    assert reactions(d.state) == []  # waiting for the operator


def test_rollout_actions_wait_for_their_cycle() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    d.approve()
    cand = d.candidates()[1]
    assert reactions(d.state) == [r.StartShadow(generation=cand)]
    d.do(cmd.StartShadow(config=CFG))
    assert reactions(d.state) == []
    assert d.state.shadow is not None
    d.beat_to(d.state.shadow.until_cycle - 1)
    assert reactions(d.state) == []
    d.beat()
    assert reactions(d.state) == [r.CompleteShadow(generation=cand)]
    d.do(cmd.RecordShadow(exact=True, similarity=1.0))
    d.do(cmd.RecordShadow(exact=True, similarity=1.0))
    d.do(cmd.CompleteShadow(config=CFG))
    assert d.state.burn_in is not None
    assert reactions(d.state) == []
    d.beat_to(d.state.burn_in.until_cycle)
    assert reactions(d.state) == [r.CompleteBurnIn(generation=cand)]
    d.burn_in()
    assert reactions(d.state) == []


def test_reactions_are_pure_and_repeatable() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    assert reactions(d.state) == reactions(d.state) == reactions(fold(d.events))
