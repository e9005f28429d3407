"""``decide``: the rules of the issue, one command at a time. Illegal commands raise a typed
``DomainError`` and leave the state exactly as it was."""

from __future__ import annotations

import math

import pytest

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.decide import decide
from evo_core.errors import (
    CycleError,
    DomainError,
    InvalidInput,
    NothingPending,
    RollbackError,
    StaleProposal,
)
from evo_core.reactions import reactions
from evo_core.state import Phase, State
from evo_core.values import BudgetUsed, Metrics, Proposal, TrainingStats
from tests.core.helpers import (
    SIGNED,
    BASELINE,
    BETTER,
    CFG,
    GENESIS,
    GOOD,
    PERIOD,
    STATE_DECODER,
    Driver,
    check_history,
    check_invariants,
    snapshot,
)


def refused(state: State, command: cmd.Command, error: type[DomainError], match: str | None = None) -> str:
    """``command`` raises ``error`` and returns nothing; the state is unchanged and equal."""
    before = snapshot(state)
    copy = STATE_DECODER.decode(before)
    with pytest.raises(error, match=match) as info:
        decide(state, command)
    assert snapshot(state) == before and state == copy
    message = str(info.value)
    assert message and "\n" not in message
    return message


# ---------------------------------------------------------------- heartbeats and windows


def test_beat_defaults_to_the_next_cycle() -> None:
    d = Driver()
    assert d.beat() == [ev.Heartbeat(cycle=1)]
    assert d.beat(count=2) == [ev.Heartbeat(cycle=2), ev.Heartbeat(cycle=3)]
    assert d.state.cycle == 3


@pytest.mark.parametrize("cycle", [5, 4, 0, -1])
def test_cycles_that_go_back_or_repeat_are_refused(cycle: int) -> None:
    d = Driver()
    d.beat(cycle=5)
    message = refused(d.state, cmd.Beat(period=PERIOD, cycle=cycle), CycleError)
    assert str(cycle) in message and "5" in message


@pytest.mark.parametrize("period, count", [(0, 1), (-3, 1), (10, 0)])
def test_beat_rejects_a_bad_period_or_count(period: int, count: int) -> None:
    refused(State(), cmd.Beat(period=period, count=count), InvalidInput)


def test_window_opens_when_a_heartbeat_reaches_the_period() -> None:
    d = Driver().genesis()
    d.beat_to(PERIOD - 1)
    assert d.state.phase is Phase.IDLE
    out = d.beat()
    assert out == [
        ev.Heartbeat(cycle=10),
        ev.WindowOpened(window=1, cycle=10, heartbeat_cycle=10, period=10, gen=1, head=GENESIS, parent=None),
    ]
    assert d.state.phase is Phase.WINDOW


def test_a_crossed_multiple_opens_its_window_and_skips_the_rest() -> None:
    d = Driver().genesis()
    out = d.beat(cycle=37)
    assert out[0] == ev.Heartbeat(cycle=37)
    assert out[1] == ev.WindowOpened(window=1, cycle=10, heartbeat_cycle=37, period=10, gen=1, head=GENESIS)
    skipped = out[2]
    assert isinstance(skipped, ev.WindowSkipped)
    assert (skipped.first_cycle, skipped.last_cycle, skipped.count) == (20, 30, 2)
    assert "window 1" in skipped.reason
    check_history(d.events)


def test_a_window_due_during_an_evolution_is_skipped_with_its_reason() -> None:
    d = Driver().genesis()
    d.open_window()
    d.beat_to(19)
    out = d.beat()
    assert out[1] == ev.WindowSkipped(
        first_cycle=20, last_cycle=20, count=1, heartbeat_cycle=20,
        reason="evolution in progress (phase window)",
    )
    assert d.state.window is not None and d.state.window.number == 1
    check_history(d.events)


def test_windows_before_genesis_are_skipped_not_lost() -> None:
    d = Driver()
    out = d.beat(cycle=25)
    assert isinstance(out[1], ev.WindowSkipped) and (out[1].first_cycle, out[1].count) == (10, 2)
    assert "no generation" in out[1].reason
    d.genesis()
    d.beat_to(30)
    assert d.state.phase is Phase.WINDOW and d.state.window is not None and d.state.window.cycle == 30
    check_history(d.events)


def test_a_batch_of_beats_covers_each_multiple_once() -> None:
    d = Driver().genesis()
    d.beat(count=35)
    check_history(d.events)
    opened = [e for e in d.events if isinstance(e, ev.WindowOpened)]
    assert [e.cycle for e in opened] == [10]


def test_register_genesis_twice_is_refused() -> None:
    d = Driver().genesis()
    refused(d.state, cmd.RegisterGenesis(generation="other"), DomainError, "already registered")


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


# ---------------------------------------------------------------- the operator


def proposed() -> Driver:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    assert d.state.phase is Phase.PROPOSED
    return d


def test_approve_with_the_full_hash_a_prefix_or_the_pending_one() -> None:
    for prefix in (None, 8, 12):
        d = proposed()
        assert d.state.proposal is not None
        digest = d.state.proposal.hash
        out = d.approve(prefix)
        assert out == [ev.Approved(proposal_hash=digest, operator="op", **SIGNED)]
        assert d.state.phase is Phase.APPROVED
    d = proposed()
    assert d.state.proposal is not None
    digest = d.state.proposal.hash
    assert d.do(cmd.Approve(**SIGNED, operator="op", proposal_hash=digest[:10].upper()))[0].proposal_hash == digest
    d = proposed()
    assert d.do(cmd.Approve(**SIGNED, operator="op"))[0].proposal_hash == digest


def test_approve_with_nothing_pending_is_refused() -> None:
    d = Driver().genesis()
    refused(d.state, cmd.Approve(**SIGNED, operator="op"), NothingPending, "no proposal")
    refused(d.state, cmd.Reject(**SIGNED, operator="op", reason="no"), NothingPending)
    d = proposed()
    d.approve()
    refused(d.state, cmd.Approve(**SIGNED, operator="op"), NothingPending)


def test_approve_with_a_stale_or_short_hash_is_refused() -> None:
    d = proposed()
    assert d.state.proposal is not None
    digest = d.state.proposal.hash
    wrong = ("0" if digest[0] != "0" else "1") + digest[1:]
    refused(d.state, cmd.Approve(**SIGNED, operator="op", proposal_hash=wrong), StaleProposal)
    refused(d.state, cmd.Approve(**SIGNED, operator="op", proposal_hash=digest[:7]), StaleProposal)
    refused(d.state, cmd.Reject(**SIGNED, operator="op", reason="no", proposal_hash=wrong), StaleProposal)


def test_a_hash_from_an_earlier_proposal_is_stale() -> None:
    d = proposed()
    assert d.state.proposal is not None
    old = d.state.proposal.hash
    d.do(cmd.Reject(**SIGNED, operator="op", reason="not now"))
    d.window([BETTER, GOOD, "fail"])
    assert d.state.proposal is not None and d.state.proposal.hash != old
    refused(d.state, cmd.Approve(**SIGNED, operator="op", proposal_hash=old), StaleProposal)


def test_reject_needs_a_reason_and_closes_the_evolution() -> None:
    d = proposed()
    refused(d.state, cmd.Reject(**SIGNED, operator="op", reason=" "), InvalidInput, "reason")
    assert d.state.proposal is not None
    digest = d.state.proposal.hash
    out = d.do(cmd.Reject(**SIGNED, operator="op", reason="tone"))
    assert out == [ev.Rejected(proposal_hash=digest, operator="op", reason="tone", **SIGNED)]
    assert d.state.phase is Phase.IDLE and d.state.head == GENESIS and d.state.proposal is None
    check_invariants(d.state)


def test_a_window_whose_head_was_rolled_back_concludes_without_a_proposal() -> None:
    """HEAD rolled back mid-window: the candidates were bred from the old HEAD, so the window
    ends with NoPromotion (a proposal against the old HEAD could never be approved)."""
    d = Driver().genesis()
    g1 = d.promote()
    d.open_window()
    d.rollback()
    assert d.state.head == GENESIS and d.state.phase is Phase.WINDOW
    d.do(cmd.SpawnCandidates(config=CFG))
    assert {e.parent for e in d.events if isinstance(e, ev.CandidateSpawned) and e.window == 2} == {g1}
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=CFG))
    for cid, outcome in zip(d.candidates(), (GOOD, BETTER, "fail")):
        d.train(cid, outcome)
    d.do(cmd.Rank())
    d.freeze_all()
    (out,) = d.conclude()
    assert isinstance(out, ev.NoPromotion) and "HEAD moved" in out.reason
    assert d.state.phase is Phase.IDLE and d.state.head == GENESIS
    check_invariants(d.state)
    check_history(d.events)


def test_approve_is_refused_when_head_differs_from_the_proposal() -> None:
    from msgspec.structs import replace

    d = proposed()
    moved = replace(d.state, head="Luna-G042-x-c1")  # hand-made: decide alone never gets here
    refused(moved, cmd.Approve(**SIGNED, operator="op"), StaleProposal, "HEAD moved")


# ---------------------------------------------------------------- rollback


def test_rollback_with_no_earlier_generation_is_refused() -> None:
    refused(State(), cmd.Rollback(operator="op"), RollbackError)
    d = Driver().genesis()
    refused(d.state, cmd.Rollback(operator="op"), RollbackError, "no earlier")
    refused(d.state, cmd.Rollback(operator="op", to=GENESIS), RollbackError, "already HEAD")


def test_rollback_default_target_is_the_previous_promoted_generation() -> None:
    d = Driver().genesis()
    g1 = d.promote()
    g2 = d.promote([BETTER, GOOD, "fail"])
    assert d.state.promoted == (GENESIS, g1, g2)
    out = d.rollback()
    assert out == [ev.RolledBack(from_generation=g2, to_generation=g1, reason="manual rollback", operator="op")]
    assert d.state.head == g1
    d.rollback()
    assert d.state.head == GENESIS
    refused(d.state, cmd.Rollback(operator="op"), RollbackError)
    check_invariants(d.state)
    check_history(d.events)


def test_rollback_to_a_named_or_prefixed_generation() -> None:
    d = Driver().genesis()
    g1 = d.promote()
    d.promote([BETTER, GOOD, "fail"])
    d.rollback(to="Luna-G000")
    assert d.state.head == GENESIS
    d.rollback(to=g1)
    assert d.state.head == g1


def test_rollback_to_unknown_never_promoted_or_ambiguous_is_refused() -> None:
    d = Driver().genesis()
    g1 = d.promote()
    d.promote([BETTER, GOOD, "fail"])
    losers = [c for c in d.state.candidates if c not in d.state.promoted]
    refused(d.state, cmd.Rollback(operator="op", to="Luna-G077-q-c1"), RollbackError, "never promoted")
    refused(d.state, cmd.Rollback(operator="op", to=losers[0]), RollbackError, "never promoted")
    refused(d.state, cmd.Rollback(operator="op", to="Luna-G00"), RollbackError, "ambiguous")
    assert g1.startswith("Luna-G00")


def test_rollback_during_shadow_aborts_it() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    d.approve()
    d.do(cmd.StartShadow(config=CFG))
    assert d.state.phase is Phase.SHADOW
    out = d.rollback()
    assert out == [ev.RolledBack(from_generation=GENESIS, to_generation=GENESIS, reason="manual rollback", operator="op")]
    assert d.state.phase is Phase.IDLE and d.state.head == GENESIS and d.state.shadow is None
    assert d.state.promoted == (GENESIS,)
    refused(d.state, cmd.CompleteShadow(config=CFG), NothingPending)


def test_rollback_after_approval_aborts_it() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    d.approve()
    d.rollback()
    assert d.state.phase is Phase.IDLE and d.state.proposal is None
    refused(d.state, cmd.StartShadow(config=CFG), NothingPending)


def test_rollback_during_burn_in_returns_to_the_previous_head() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    d.approve()
    d.shadow()
    assert d.state.phase is Phase.BURN_IN
    g1 = d.state.head
    out = d.rollback()
    assert out == [ev.RolledBack(from_generation=g1, to_generation=GENESIS, reason="manual rollback", operator="op")]
    assert d.state.head == GENESIS and d.state.phase is Phase.IDLE and d.state.burn_in is None
    check_invariants(d.state)


# ---------------------------------------------------------------- shadow, cutover, burn-in


def approved() -> Driver:
    d = proposed()
    d.approve()
    return d


def test_shadow_passes_then_promotes_with_the_approved_hash() -> None:
    d = approved()
    assert d.state.proposal is not None
    digest, cand = d.state.proposal.hash, d.state.proposal.proposal.candidate
    out = d.shadow(samples=3, similarity=0.95)
    assert [type(e) for e in out] == [ev.ShadowCompleted, ev.Promoted]
    assert out[0].outcome == "passed" and out[0].samples == 3
    promoted = out[1]
    assert isinstance(promoted, ev.Promoted)
    assert (promoted.generation, promoted.previous_head, promoted.proposal_hash) == (cand, GENESIS, digest)
    assert promoted.burn_in_until == d.state.cycle + CFG.burn_in.cycles
    assert d.state.head == cand and d.state.phase is Phase.BURN_IN
    check_history(d.events)


def test_shadow_cannot_complete_before_its_end() -> None:
    d = approved()
    d.do(cmd.StartShadow(config=CFG))
    refused(d.state, cmd.CompleteShadow(config=CFG), DomainError, "runs until")
    refused(d.state, cmd.StartShadow(config=CFG), NothingPending)


def test_shadow_with_low_parity_fails_and_keeps_head() -> None:
    d = approved()
    out = d.shadow(samples=3, similarity=0.5)
    assert [type(e) for e in out] == [ev.ShadowCompleted] and out[0].outcome == "failed"
    assert d.state.phase is Phase.IDLE and d.state.head == GENESIS


def test_shadow_inconclusive_with_too_few_samples_extends_until_cycle() -> None:
    d = approved()
    out = d.shadow(samples=1)
    assert len(out) == 1 and isinstance(out[0], ev.ShadowCompleted)
    assert out[0].outcome == "inconclusive"
    assert out[0].until_cycle == d.state.cycle + CFG.shadow.cycles
    assert d.state.phase is Phase.SHADOW and d.state.shadow is not None
    assert d.state.shadow.until_cycle == out[0].until_cycle
    refused(d.state, cmd.CompleteShadow(config=CFG), DomainError, "runs until")
    d.do(cmd.RecordShadow(exact=True, similarity=1.0))
    d.beat_to(d.state.shadow.until_cycle)
    out = d.do(cmd.CompleteShadow(config=CFG))
    assert [type(e) for e in out] == [ev.ShadowCompleted, ev.Promoted]


@pytest.mark.parametrize("similarity", [math.nan, math.inf, -0.1, 1.5])
def test_shadow_similarity_must_be_in_range(similarity: float) -> None:
    d = approved()
    d.do(cmd.StartShadow(config=CFG))
    refused(d.state, cmd.RecordShadow(exact=False, similarity=similarity), InvalidInput, "similarity")


def burning() -> Driver:
    d = approved()
    d.shadow()
    assert d.state.phase is Phase.BURN_IN
    return d


def test_burn_in_passes_and_head_advances() -> None:
    d = burning()
    head = d.state.head
    refused(d.state, cmd.CompleteBurnIn(config=CFG), DomainError, "runs until")
    out = d.burn_in(answers=100, errors=2, latency=1.25)
    assert out == [ev.BurnInPassed(generation=head, answers=100, errors=2, law_violations=0, latency_ratio=1.25)]
    assert d.state.phase is Phase.IDLE and d.state.head == head and head in d.state.promoted


@pytest.mark.parametrize("errors, laws, latency", [(3, 0, 1.0), (0, 1, 1.0), (0, 0, 2.5)])
def test_burn_in_failure_emits_burn_in_failed_and_automatic_rollback(errors: int, laws: int, latency: float) -> None:
    d = burning()
    head = d.state.head
    out = d.burn_in(answers=100, errors=errors, laws=laws, latency=latency)
    assert [type(e) for e in out] == [ev.BurnInFailed, ev.RolledBack]
    rolled = out[1]
    assert isinstance(rolled, ev.RolledBack)
    assert (rolled.from_generation, rolled.to_generation, rolled.automatic) == (head, GENESIS, True)
    assert rolled.reason == out[0].reason and rolled.reason.startswith("burn-in failed")
    assert d.state.head == GENESIS and d.state.phase is Phase.IDLE
    check_invariants(d.state)
    check_history(d.events)


def test_burn_in_with_too_few_answers_is_extended_not_judged() -> None:
    d = burning()
    burn = d.state.burn_in
    assert burn is not None
    d.answers(CFG.burn_in.min_answers - 1)
    d.beat_to(burn.until_cycle)
    (out,) = d.do(cmd.CompleteBurnIn(config=CFG))
    assert isinstance(out, ev.BurnInExtended)
    assert out.answers == CFG.burn_in.min_answers - 1 and out.until_cycle == d.state.cycle + CFG.burn_in.cycles
    assert d.state.phase is Phase.BURN_IN and d.state.burn_in is not None
    assert d.state.burn_in.until_cycle == out.until_cycle and d.state.burn_in.answers == out.answers
    assert reactions(d.state) == []  # nothing due until the extended end
    out2 = d.burn_in(answers=1)
    assert isinstance(out2[0], ev.BurnInPassed) and out2[0].answers == CFG.burn_in.min_answers


@pytest.mark.parametrize("ratio", [math.nan, math.inf, 0.0, -1.0])
def test_burn_in_latency_ratio_must_be_a_positive_finite_number(ratio: float) -> None:
    d = burning()
    refused(d.state, cmd.RecordAnswer(error=False, law_violation=False, latency_ratio=ratio), InvalidInput, "latency")


def test_answers_are_recorded_only_during_burn_in() -> None:
    d = approved()
    refused(d.state, cmd.RecordAnswer(error=False, law_violation=False), NothingPending, "burn-in")


def test_promoted_needs_an_approval_shadow_commands_without_one_are_refused() -> None:
    d = proposed()
    refused(d.state, cmd.StartShadow(config=CFG), NothingPending)
    refused(d.state, cmd.CompleteShadow(config=CFG), NothingPending)
    refused(d.state, cmd.RecordShadow(exact=True, similarity=1.0), NothingPending)
    refused(d.state, cmd.CompleteBurnIn(config=CFG), NothingPending)


def test_unknown_command_is_a_domain_error() -> None:
    class Dance(cmd.Command):
        pass

    refused(State(), Dance(), DomainError, "unknown command")


def test_full_lifecycle_keeps_every_invariant() -> None:
    d = Driver().genesis()
    d.promote()
    d.window(["fail", "breach", "fail"])
    d.promote([BETTER, "fail", GOOD])
    d.rollback()
    d.beat_to(d.state.cycle + 25)
    check_invariants(d.state)
    check_history(d.events)


def test_every_reachable_phase_can_be_drained_to_idle() -> None:
    from tests.core.helpers import drain

    d = Driver().genesis()
    d.promote()
    d.open_window()
    assert drain(d.state, CFG).phase is Phase.IDLE
    d.window([GOOD, BETTER, "fail"])
    for step in (lambda: None, d.approve, lambda: d.do(cmd.StartShadow(config=CFG))):
        step()
        assert drain(d.state, CFG).phase is Phase.IDLE
