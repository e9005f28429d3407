"""``decide`` during a window: spawning candidates, training, budgets, evaluation, ranking,
freezing and the proposal. Illegal commands raise a typed ``DomainError`` and leave the state
exactly as it was (``refused``)."""

from __future__ import annotations

import math

import pytest

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import DomainError, InvalidInput, NothingPending
from evo_core.values import BudgetUsed, Metrics, Proposal, TrainingStats
from tests.core.helpers import BASELINE, BETTER, CFG, GENESIS, GOOD, Driver, refused


# ---------------------------------------------------------------- the window


def test_spawn_follows_the_config() -> None:
    d = Driver().genesis()
    d.open_window()
    out = d.do(cmd.SpawnCandidates(config=CFG))
    assert [e.candidate for e in out] == ["Luna-G001-a-c10", "Luna-G001-b-c10", "Luna-G001-c-c10"]
    assert [e.seed for e in out] == [424242, 424243, 424244]
    assert all(e.parent == GENESIS and e.stabilizer is None and e.budget == CFG.budget.limits() for e in out)
    refused(d.state, cmd.SpawnCandidates(config=CFG), DomainError, "already spawned")


def test_second_generation_uses_head_as_parent_and_previous_as_stabilizer() -> None:
    d = Driver().genesis()
    g1 = d.promote()
    d.open_window()
    spawned = d.do(cmd.SpawnCandidates(config=CFG))
    assert all(e.gen == 2 and e.parent == g1 and e.stabilizer == GENESIS for e in spawned)


@pytest.mark.parametrize(
    "command",
    [
        cmd.SpawnCandidates(config=CFG),
        cmd.StartTraining(candidate="x"),
        cmd.RecordBaseline(metrics=BASELINE, config=CFG),
        cmd.Rank(),
        cmd.Freeze(candidate="x", archive="a", archive_hash="h"),
        cmd.Propose(proposal=None),
    ],
)
def test_window_commands_without_a_window_are_refused(command: cmd.Command) -> None:
    d = Driver().genesis()
    refused(d.state, command, NothingPending)


def test_training_steps_out_of_order_are_refused() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    a = d.candidates()[0]
    used = BudgetUsed(steps=1)
    stats = TrainingStats()
    refused(d.state, cmd.StartTraining(candidate="Luna-G009-z-c10"), NothingPending)
    refused(d.state, cmd.FinishTraining(candidate=a, stats=stats, budget_used=used), DomainError, "spawned")
    refused(d.state, cmd.RecordEvaluation(candidate=a, metrics=GOOD, config=CFG), DomainError)
    refused(d.state, cmd.Rank(), DomainError, "not done")
    d.do(cmd.StartTraining(candidate=a))
    d.do(cmd.FinishTraining(candidate=a, stats=stats, budget_used=used))
    refused(d.state, cmd.RecordEvaluation(candidate=a, metrics=GOOD, config=CFG), DomainError, "HEAD")
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    refused(d.state, cmd.RecordBaseline(metrics=BASELINE, config=CFG), DomainError, "already")
    refused(d.state, cmd.Freeze(candidate=a, archive="x", archive_hash="y"), DomainError, "after ranking")


def test_an_interrupted_training_can_restart_and_counts_attempts() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    a = d.candidates()[0]
    d.do(cmd.StartTraining(candidate=a))
    assert d.do(cmd.StartTraining(candidate=a)) == [ev.TrainingStarted(candidate=a, attempt=2)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(bad: float) -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    a, b = d.candidates()[:2]
    d.do(cmd.StartTraining(candidate=a))
    nan_metrics = Metrics(recall=bad, generalize=0.5, tone_drift=0.0, law_violations=0)
    refused(d.state, cmd.RecordBaseline(metrics=nan_metrics, config=CFG), InvalidInput, "recall")
    stats = TrainingStats()
    refused(d.state, cmd.FinishTraining(candidate=a, stats=stats, budget_used=BudgetUsed(walltime_minutes=bad)),
            InvalidInput, "walltime_minutes")
    refused(d.state, cmd.FinishTraining(candidate=a, stats=TrainingStats(loss_final=bad), budget_used=BudgetUsed()),
            InvalidInput, "loss_final")
    refused(d.state, cmd.BreachBudget(candidate=a, resource="steps", limit=10.0, used=bad, budget_used=BudgetUsed()),
            InvalidInput, "used")
    refused(d.state, cmd.FailTraining(candidate=b, reason="x", budget_used=BudgetUsed(gpu_memory_gb=bad)),
            InvalidInput, "gpu_memory_gb")
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    d.do(cmd.FinishTraining(candidate=a, stats=stats, budget_used=BudgetUsed()))
    refused(d.state, cmd.RecordEvaluation(candidate=a, metrics=Metrics(recall=0.5, generalize=0.5, tone_drift=bad, law_violations=0), config=CFG),
            InvalidInput, "tone_drift")


def test_training_failure_needs_a_reason() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    refused(d.state, cmd.FailTraining(candidate=d.candidates()[0], reason="  "), InvalidInput, "reason")


def test_a_breached_budget_hard_fails_and_cannot_be_evaluated() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    a = d.candidates()[0]
    d.train(a, "breach")
    refused(d.state, cmd.RecordEvaluation(candidate=a, metrics=GOOD, config=CFG), DomainError, "failed")
    refused(d.state, cmd.StartTraining(candidate=a), DomainError, "failed")


def test_every_candidate_is_frozen_exactly_once_before_the_window_concludes() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    a, b, c = d.candidates()
    for cid, outcome in zip((a, b, c), (GOOD, "breach", "fail")):
        d.train(cid, outcome)
    d.do(cmd.Rank())
    refused(d.state, cmd.Rank(), DomainError, "already ranked")
    d.do(cmd.Freeze(candidate=b, archive="models/archive/b", archive_hash="h" * 64))
    refused(d.state, cmd.Freeze(candidate=b, archive="again", archive_hash="h" * 64), DomainError, "already frozen")
    refused(d.state, cmd.Freeze(candidate=a, archive="", archive_hash="h" * 64), InvalidInput)
    refused(d.state, cmd.Propose(proposal=None), DomainError, "not frozen")
    for cid in (a, c):
        d.do(cmd.Freeze(candidate=cid, archive=f"models/archive/{cid}", archive_hash="h" * 64))
    frozen = [e for e in d.events if isinstance(e, ev.CandidateFrozen)]
    assert sorted(e.candidate for e in frozen) == sorted((a, b, c))
    assert {e.candidate: e.status for e in frozen}[c] == "FAIL - worker died"


def test_propose_must_match_the_draft_and_carry_a_hash() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    for cid, outcome in zip(d.candidates(), (GOOD, BETTER, "fail")):
        d.train(cid, outcome)
    d.do(cmd.Rank())
    d.freeze_all()
    from evo_core.window import draft_proposal

    draft, _ = draft_proposal(d.state)
    assert draft is not None
    refused(d.state, cmd.Propose(proposal=None), InvalidInput)  # a passing, better candidate exists
    other = Proposal(**{**{f: getattr(draft, f) for f in draft.__struct_fields__}, "candidate": d.candidates()[0]})
    refused(d.state, cmd.Propose(proposal=other, proposal_hash="a" * 64), InvalidInput, "does not match")
    refused(d.state, cmd.Propose(proposal=draft, proposal_hash="abc"), InvalidInput, "hash")


def test_propose_refuses_a_hash_that_is_not_lowercase_hex() -> None:
    """The proposal hash is a 64-hex blake3 digest; an approval compares lowercase hex."""
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    for cid, outcome in zip(d.candidates(), (GOOD, BETTER, "fail")):
        d.train(cid, outcome)
    d.do(cmd.Rank())
    d.freeze_all()
    from evo_core.window import draft_proposal

    draft, _ = draft_proposal(d.state)
    refused(d.state, cmd.Propose(proposal=draft, proposal_hash="Z" * 64), InvalidInput, "hash")


def test_nothing_may_be_proposed_when_no_candidate_passed() -> None:
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=CFG))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    for cid in d.candidates():
        d.train(cid, "fail")
    d.do(cmd.Rank())
    d.freeze_all()
    fake = Proposal(
        window=1, candidate=d.candidates()[0], current_head=GENESIS, reason="", score=1.0,
        head_score=0.0, improvement=1.0, metrics=GOOD, gates=(), model_hash="", manifest_hash="",
    )
    refused(d.state, cmd.Propose(proposal=fake, proposal_hash="a" * 64), InvalidInput, "nothing may be proposed")
