from __future__ import annotations

import msgspec

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.values import BudgetUsed, GateResult, Metrics
from projections.explain import explain, generation_names
from projections.explain_gates import evidence_text, gate_text
from projections.explain_text import render_explanation
from tests.projections.conftest import BASELINE, FAIR, GENESIS, GOOD, SIGNED, WEAK, Sim, digest

A, B, C, D = (f"Luna-G001-{b}-c100" for b in "abcd")


class Mystery(ev.Event, frozen=True):
    """An event type this projection has never heard of (a newer ledger)."""

    note: str


def test_a_law_breaker_says_which_gate_and_by_how_much(story: Sim) -> None:
    x = explain(story.records, B)
    assert x is not None
    assert x.why == "FAIL - laws gate: 2 law violations > 0"
    laws = next(g for g in x.gates if g.name == "laws")
    assert not laws.passed and laws.value == 2.0 and laws.margin == -2.0
    assert x.passed is False and x.rank == 3 and x.ranked == 4
    assert x.window == 1 and x.window_cycle == 100 and x.head_at_open == GENESIS
    assert x.parent == GENESIS and x.stabilizer is None and x.seed == 424243
    assert x.frozen is not None and x.frozen.status == "FAIL - laws gate"
    assert x.frozen.archive_hash == digest("archive " + B)
    assert x.frozen.model_hash == digest("model " + B)
    assert x.frozen.manifest_hash == digest("manifest " + B)
    assert not x.proposed and not x.promoted and x.rollout == ()
    text = render_explanation(x)
    assert text[0] == f"{B}: FAIL - laws gate: 2 law violations > 0"
    gate_line = next(line for line in text if line.strip().startswith("laws"))
    assert "FAIL" in gate_line and "-2.0000" in gate_line


def test_score_is_set_against_heads_baseline(story: Sim) -> None:
    x = explain(story.records, B)
    assert x is not None and x.score is not None and x.baseline_score is not None
    assert x.baseline_metrics == BASELINE and x.baseline_generation == GENESIS
    assert x.improvement == x.score - x.baseline_score


def test_a_budget_breach_names_the_resource_and_the_overrun(story: Sim) -> None:
    x = explain(story.records, D)
    assert x is not None
    assert x.why == "FAIL - budget: steps 2,500 > 2,000 (over by 500)"
    assert x.breach is not None and x.breach.over == 500.0
    assert x.metrics is None and x.gates == () and x.passed is False
    assert any("OVER" in line and "steps" in line for line in render_explanation(x))


def test_a_walltime_breach_has_its_unit(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.do(cmd.SpawnCandidates(config=sim.config))
    a = sim.cand("a")
    sim.do(cmd.StartTraining(candidate=a))
    used = BudgetUsed(steps=900, walltime_minutes=61.2)
    sim.do(cmd.BreachBudget(candidate=a, resource="walltime", limit=60.0, used=61.2, budget_used=used))
    x = explain(sim.records, a)
    assert x is not None and x.attempts == 1
    assert x.why == "FAIL - budget: walltime 61.2 min > 60 min (over by 1.2 min)"
    assert x.budget_used == used


def test_crash_and_in_flight_candidates(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.do(cmd.SpawnCandidates(config=sim.config))
    a, b, c = sim.cand("a"), sim.cand("b"), sim.cand("c")
    sim.do(cmd.StartTraining(candidate=a))
    sim.do(cmd.FailTraining(candidate=a, reason="worker died"))
    sim.do(cmd.StartTraining(candidate=b))
    assert (x := explain(sim.records, a)) is not None and x.why == "FAIL - training failed: worker died"
    assert (x := explain(sim.records, b)) is not None and x.why == "training (attempt 1)"
    assert (x := explain(sim.records, c)) is not None and x.why == "spawned, not trained yet"


def test_the_winner_promoted_then_rolled_back(story: Sim) -> None:
    x = explain(story.records, A)
    assert x is not None
    assert x.why == f"proposed and promoted, then rolled back to {GENESIS}: tone regressed in chat"
    assert (x.proposed, x.approved, x.rejected, x.shadowed, x.promoted, x.rolled_back) == (
        True, True, False, True, True, True,
    )
    assert x.rank == 1 and x.passed and not x.head_now
    assert x.window_outcome == f"proposed {A}"
    assert [s.type for s in x.rollout] == [
        "Proposed", "Approved", "ShadowStarted", "ShadowCompleted", "Promoted", "BurnInPassed", "RolledBack",
    ]
    assert x.proposal_hash and x.proposal_hash in "\n".join(render_explanation(x))


def test_a_passing_runner_up_is_told_its_rank(story: Sim) -> None:
    x = explain(story.records, C)
    assert x is not None
    assert x.why == f"passed all gates but ranked 2nd; window proposed {A}"
    assert all(g.passed for g in x.gates)


def test_rejected_and_not_better_than_head(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": GOOD, "b": WEAK, "c": FAIR})
    sim.do(cmd.Reject(**SIGNED, operator="travis", reason="not now"))
    x = explain(sim.records, sim.cand("a"))
    assert x is not None and x.rejected and x.why == "proposed, rejected by travis: not now"
    sim.beat(200)
    passes_but_worse = Metrics(recall=0.86, generalize=0.73, tone_drift=0.05, law_violations=0)
    sim.window({"a": passes_but_worse})
    x = explain(sim.records, sim.cand("a"))
    assert x is not None and x.rank == 1 and not x.proposed
    assert x.why.startswith("passed all gates, ranked 1st, but no promotion: best candidate")


def test_a_genesis_with_its_hashes(story: Sim) -> None:
    x = explain(story.records, GENESIS)
    assert x is not None and x.kind == "genesis" and x.gen == 0
    assert x.model_hash == digest("genesis model") and x.archive_hash == digest("genesis archive")
    assert x.head_now and x.taught == (1,)
    assert x.why == "genesis G000, registered as HEAD at cycle 0; HEAD now"
    assert [s.type for s in x.rollout] == ["Promoted", "RolledBack"]


def test_unknown_names_and_unknown_event_types(story: Sim) -> None:
    assert explain(story.records, "Luna-G009-z-c1") is None
    records = list(story.records)
    records.insert(110, msgspec.structs.replace(records[110], event=Mystery(note="from the future")))
    x = explain(records, B)
    assert x is not None and x.why == "FAIL - laws gate: 2 law violations > 0"


def test_names_and_json(story: Sim) -> None:
    assert generation_names(story.records) == [GENESIS, A, B, C, D]
    decoded = msgspec.json.decode(msgspec.json.encode(explain(story.records, B)))
    assert decoded["why"].startswith("FAIL - laws gate")
    assert {g["name"] for g in decoded["gates"]} == {"recall", "generalize", "tone", "laws", "budget"}



def test_a_refused_approval_is_part_of_the_story(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": GOOD})
    assert sim.state.proposal is not None
    digest_ = sim.state.proposal.hash
    sim.do(cmd.RefuseApproval(action="approve", operator="mallory", reason="untrusted key", proposal_hash=digest_))
    x = explain(sim.records, sim.cand("a"))
    assert x is not None and x.proposed and not x.approved
    assert x.why == "proposed, approve by mallory refused: untrusted key"
    assert [s.type for s in x.rollout] == ["Proposed", "ApprovalRefused"]


def _measured(recall: str, generalize: str) -> Metrics:
    return Metrics(recall=recall.count("1") / len(recall), generalize=generalize.count("1") / len(generalize),
                      tone_drift=0.01, law_violations=0, recall_outcomes=recall, generalize_outcomes=generalize,
                      tone_drifts=(0.0, 0.02))


def test_a_bounded_gate_explains_the_difference_its_items_and_the_bound(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    head = _measured("1" * 30, "0" * 30)
    sim.window({"a": _measured("1" * 29 + "0", "1" * 16 + "0" * 14), "b": _measured("1" * 30, "1" + "0" * 29)},
               baseline=head)
    lucky = explain(sim.records, sim.cand("b"))
    assert lucky is not None
    assert lucky.why == (
        "FAIL - generalize gate: +0.0333 vs HEAD (1 more of 30: 1 won, 0 lost), "
        "95% lower bound -0.0521 < delta 0.02"
    )
    text = render_explanation(lucky)
    line = next(x for x in text if x.strip().startswith("generalize"))
    assert "95% lower bound -0.0521 < delta 0.02" in line and line.endswith("FAIL")
    assert "generalize 0.0333 (1/30)" in "\n".join(text)
    winner = explain(sim.records, sim.cand("a"))
    assert winner is not None and winner.passed
    line = next(x for x in render_explanation(winner) if x.strip().startswith("recall"))
    assert "(1 fewer of 30: 0 won, 1 lost), 95% upper bound on the drop 0.1364 <= epsilon 0.15" in line
    assert line.endswith("PASS")


def test_a_gate_recorded_before_bounds_reads_as_it_always_did() -> None:
    weak = GateResult(name="generalize", passed=False, value=0.6, threshold=0.72, margin=-0.12)
    assert gate_text(weak, None, None) == "generalize gate: generalize 0.6000 < 0.7200 (short by 0.1200)"
    assert evidence_text(weak) == ""
