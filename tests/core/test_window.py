"""One evolution window: names, branch plans, verdicts, ranking and the proposal it concludes with."""

from __future__ import annotations

import pytest

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import ScoreConfig
from evo_core.errors import InvalidInput
from evo_core.state import CandidateStatus, Phase
from evo_core.values import BudgetUsed, Metrics, TrainingStats
from evo_core.window import (
    branch_letter,
    candidate_name,
    draft_proposal,
    genesis_name,
    plan_branches,
    rank,
    verdict,
)
from tests.core.helpers import (
    BAD_RECALL_LAWS,
    BASELINE,
    BETTER,
    CFG,
    GOOD,
    PASSES_BUT_WORSE,
    Driver,
    check_history,
    check_invariants,
)


def test_names_follow_the_spec() -> None:
    assert genesis_name("Luna") == "Luna-G000-genesis"
    assert candidate_name("Luna", 11, "a", 10000) == "Luna-G011-a-c10000"
    assert [branch_letter(i) for i in (0, 1, 25, 26, 27)] == ["a", "b", "z", "aa", "ab"]


def test_plan_branches_distinct_seeds_and_cycling_strategies() -> None:
    plan = plan_branches(4, 424242, ("recent_weighted", "uniform_sample"))
    assert plan == [
        ("a", 424242, "recent_weighted"),
        ("b", 424243, "uniform_sample"),
        ("c", 424244, "recent_weighted"),
        ("d", 424245, "uniform_sample"),
    ]
    with pytest.raises(InvalidInput):
        plan_branches(2, 1, ())


def test_verdict_strings() -> None:
    d = Driver().genesis()
    d.window([GOOD, "breach", BAD_RECALL_LAWS])
    a, b, c = (d.state.candidates[x] for x in d.candidates())
    assert verdict(a) == "PASS"
    assert verdict(b) == "FAIL - budget: steps"
    assert verdict(c) == "FAIL - recall gate, laws gate"
    assert [x.verdict for x in (a, b, c)] == ["PASS", "FAIL - budget: steps", "FAIL - recall gate, laws gate"]


def test_crashed_training_verdict_names_the_reason() -> None:
    d = Driver().genesis()
    d.window(["fail", GOOD, GOOD])
    assert d.state.candidates[d.candidates()[0]].verdict == "FAIL - worker died"


def test_finishing_over_budget_is_a_breach_not_a_pass() -> None:
    d = Driver().genesis()
    d.window(["over_budget", GOOD, GOOD])
    first = d.state.candidates[d.candidates()[0]]
    assert first.status is CandidateStatus.FAILED and not first.passed
    assert first.verdict == "FAIL - budget: disk"
    assert any(isinstance(e, ev.BudgetBreached) and e.resource == "disk" for e in d.events)


def test_ranking_passing_by_score_then_failed_gates_then_training_failures() -> None:
    d = Driver().genesis()
    d.window(["fail", BAD_RECALL_LAWS, GOOD])  # a: crashed, b: gates failed, c: passed
    a, b, c = d.candidates()
    assert d.state.window is not None and d.state.window.ranking == (c, b, a)

    d2 = Driver().genesis()
    d2.window([GOOD, BETTER, GOOD])
    a, b, c = d2.candidates()
    assert d2.state.window is not None and d2.state.window.ranking == (b, a, c)  # tie: earlier branch


def test_rank_sorts_failures_by_score_within_their_group() -> None:
    d = Driver().genesis()
    worse = Metrics(recall=0.1, generalize=0.7, tone_drift=0.0, law_violations=1)
    d.window([worse, BAD_RECALL_LAWS, "breach"])
    a, b, c = d.candidates()
    cands = [d.state.candidates[x] for x in (c, a, b)]
    assert rank(cands) == (b, a, c)


def test_best_passing_candidate_that_beats_head_is_proposed() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, BAD_RECALL_LAWS])
    assert d.state.phase is Phase.PROPOSED and d.state.proposal is not None
    p = d.state.proposal.proposal
    assert p.candidate == d.candidates()[1]
    assert p.current_head == "Luna-G000-genesis"
    assert p.metrics == BETTER and all(g.passed for g in p.gates)
    assert p.improvement > 0 and p.score > p.head_score
    check_invariants(d.state)
    check_history(d.events)


def test_no_promotion_when_none_pass() -> None:
    d = Driver().genesis()
    out = d.window(["fail", "breach", BAD_RECALL_LAWS])
    assert out == [ev.NoPromotion(window=1, reason="no candidate passed the gates")]
    assert d.state.phase is Phase.IDLE and d.state.head == "Luna-G000-genesis"
    assert all(c.frozen for c in d.state.window_candidates())


def test_no_promotion_when_the_best_does_not_beat_head() -> None:
    d = Driver().genesis()
    out = d.window([PASSES_BUT_WORSE, "fail", "fail"])
    cand = d.state.candidates[d.candidates()[0]]
    assert cand.passed  # it passed every gate...
    assert isinstance(out[0], ev.NoPromotion)
    assert "does not beat HEAD" in out[0].reason  # ...but scores below HEAD
    assert d.state.phase is Phase.IDLE and d.state.proposal is None


def test_equal_score_is_not_an_improvement() -> None:
    cfg = CFG.model_copy(update={"score": ScoreConfig(recall=0.5, generalize=0.5, tone=0.0)})
    d = Driver(config=cfg).genesis()
    head = Metrics(recall=0.5, generalize=0.5, tone_drift=0.0, law_violations=0)
    # recall -1/32 (within epsilon), generalize +1/32 (over delta): gates pass, same score
    same = Metrics(recall=0.46875, generalize=0.53125, tone_drift=0.0, law_violations=0)
    out = d.window([same, "fail", "fail"], baseline=head)
    cand = d.state.candidates[d.candidates()[0]]
    assert cand.passed and cand.score == 0.5
    assert isinstance(out[0], ev.NoPromotion) and d.state.phase is Phase.IDLE


def test_draft_proposal_needs_a_ranked_window() -> None:
    d = Driver().genesis()
    d.open_window()
    with pytest.raises(Exception, match="not ranked"):
        draft_proposal(d.state)


def test_baseline_score_uses_config_weights() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    assert d.state.window is not None
    assert d.state.window.baseline_score == pytest.approx(0.4 * 0.8 + 0.4 * 0.6 + 0.2 * 0.98)


# ---------------------------------------------------------------- paired outcomes through decide


def _measured(recall: str, generalize: str, laws: int = 0) -> Metrics:
    return Metrics(
        recall=recall.count("1") / len(recall), generalize=generalize.count("1") / len(generalize),
        tone_drift=0.01, law_violations=laws, recall_outcomes=recall, generalize_outcomes=generalize,
        tone_drifts=(0.01,),
    )


def test_a_window_on_paired_outcomes_passes_a_clear_gain_and_refuses_a_lucky_one() -> None:
    d = Driver().genesis()
    head = _measured("1" * 30, "0" * 30)
    clear = _measured("1" * 29 + "0", "1" * 16 + "0" * 14)  # one unlucky fact, 16 held-out gains
    lucky = _measured("1" * 30, "1" + "0" * 29)  # one lucky answer
    out = d.window([clear, lucky, "fail"], baseline=head)
    a, b, _ = (d.state.candidates[c] for c in d.candidates())
    assert a.passed and not b.passed
    assert verdict(b) == "FAIL - generalize gate"
    gates = {g.name: g for g in b.gates}
    assert (gates["generalize"].method, gates["generalize"].n_items, gates["generalize"].wins) == ("tango-paired", 30, 1)
    assert gates["generalize"].confidence == CFG.gates.confidence
    assert isinstance(out[0], ev.Proposed) and out[0].proposal.candidate == a.id


def test_outcomes_on_other_items_than_heads_are_refused_and_change_nothing() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    d.do(cmd.RecordBaseline(metrics=_measured("1" * 30, "0" * 30), config=CFG))
    cid = d.candidates()[0]
    d.do(cmd.StartTraining(candidate=cid))
    d.do(cmd.FinishTraining(candidate=cid, stats=TrainingStats(), budget_used=BudgetUsed(steps=5)))
    before = d.state
    with pytest.raises(InvalidInput, match="same probe items"):
        d.do(cmd.RecordEvaluation(candidate=cid, metrics=_measured("1" * 60, "1" * 30), config=CFG))
    assert d.state == before


def test_a_gate_record_written_before_bounds_still_decodes_as_it_was() -> None:
    """The ledger is forever: GateEvaluated and BaselineEvaluated as they were written before
    per-item outcomes decode with empty evidence and the raw method."""
    old = (
        b'{"type":"GateEvaluated","candidate":"Luna-G001-a-c10","metrics":{"recall":0.9,"generalize":0.5,'
        b'"tone_drift":0.01,"law_violations":0},"gates":[{"name":"recall","passed":true,"value":0.9,'
        b'"threshold":0.75,"margin":0.15}],"passed":true,"score":0.758}'
    )
    event = ev.decode_event(old)
    assert isinstance(event, ev.GateEvaluated)
    assert event.metrics.recall_outcomes == "" and event.metrics.tone_drifts == ()
    (gate,) = event.gates
    assert (gate.method, gate.bound, gate.confidence, gate.n_items, gate.wins, gate.losses) == ("", None, None, 0, 0, 0)
    assert gate.threshold == 0.75 and gate.margin == 0.15
