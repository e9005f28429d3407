"""``decide`` after an approval: the shadow, the cutover and burn-in. Illegal commands raise a
typed ``DomainError`` and leave the state exactly as it was (``refused``)."""

from __future__ import annotations

import math

import pytest

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import DomainError, InvalidInput, NothingPending
from evo_core.reactions import reactions
from evo_core.state import Phase
from tests.core.helpers import CFG, GENESIS, Driver, check_history, check_invariants, proposed, refused


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
