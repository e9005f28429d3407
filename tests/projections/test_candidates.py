from __future__ import annotations

from evo_core import commands as cmd
from evo_core import events as ev
from projections import gen_candidates
from tests.projections.conftest import FAIR, GENESIS, GOOD, LAWLESS, Sim


def test_current_window_candidates_with_status_and_rank(story: Sim) -> None:
    views = gen_candidates(story.state)
    assert [v.branch for v in views] == ["a", "b", "c", "d"]
    statuses = ["PASS", "FAIL - laws gate", "PASS", "FAIL - budget: steps"]
    assert [v.status for v in views] == statuses
    assert [v.rank for v in views] == [1, 3, 2, 4]
    assert [v.seed for v in views] == [424242, 424243, 424244, 424245]
    a, b, _, d = views
    assert a.metrics == GOOD and a.score is not None and a.frozen
    assert a.parent == GENESIS and a.stabilizer is None
    assert a.budget_fraction["steps"] == 1850 / 2000
    assert d.budget_fraction["steps"] == 2500 / 2000
    assert [g.name for g in b.gates if not g.passed] == ["laws"]


def test_in_flight_statuses(sim: Sim) -> None:
    sim.genesis()
    assert gen_candidates(sim.state) == []
    sim.beat(100)
    sim.do(cmd.SpawnCandidates(config=sim.config))
    sim.do(cmd.RecordBaseline(metrics=FAIR, config=sim.config))
    a, b, c = sim.cand("a"), sim.cand("b"), sim.cand("c")
    sim.do(cmd.StartTraining(candidate=a))
    sim.do(cmd.StartTraining(candidate=b))
    sim.do(
        cmd.FinishTraining(
            candidate=b, stats=ev.TrainingStats(), budget_used=ev.BudgetUsed(steps=10)
        )
    )
    sim.do(cmd.StartTraining(candidate=c))
    sim.do(cmd.FinishTraining(candidate=c, stats=ev.TrainingStats(), budget_used=ev.BudgetUsed()))
    sim.do(cmd.RecordEvaluation(candidate=c, metrics=LAWLESS, config=sim.config))
    views = {v.id: v for v in gen_candidates(sim.state)}
    assert views[a].status == "TRAINING" and views[a].attempts == 1
    assert views[b].status == "TRAINED" and views[b].budget_fraction["steps"] == 10 / 2000
    assert views[c].status == "FAIL - laws gate" and views[c].verdict == ""  # not frozen yet
    assert views[sim.cand("d")].status == "SPAWNED" and views[sim.cand("d")].budget_fraction == {}
    assert all(v.rank is None for v in views.values())
