"""``decide`` on the operator's commands: approve, reject, rollback. Illegal commands raise a
typed ``DomainError`` and leave the state exactly as it was (``refused``)."""

from __future__ import annotations

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import InvalidInput, NothingPending, RollbackError, StaleProposal
from evo_core.state import Phase, State
from tests.core.helpers import (
    BASELINE,
    BETTER,
    CFG,
    GENESIS,
    GOOD,
    SIGNED,
    Driver,
    check_history,
    check_invariants,
    proposed,
    refused,
)


# ---------------------------------------------------------------- the operator


def _rolled(out: list[ev.Event]) -> list[tuple[str, str, str, str]]:
    """What a rollback says (its signature is the test key's: the verified fold checked it)."""
    return [(e.from_generation, e.to_generation, e.reason, e.operator) for e in out if isinstance(e, ev.RolledBack)]


def test_approve_with_the_full_hash_a_prefix_or_the_pending_one() -> None:
    for prefix in (None, 8, 12):
        d = proposed()
        assert d.state.proposal is not None
        digest = d.state.proposal.hash
        out = d.approve(prefix)
        assert [(type(e), e.proposal_hash, e.operator, e.key_id) for e in out] == [  # type: ignore[attr-defined]
            (ev.Approved, digest, "op", SIGNED["key_id"])
        ]
        assert d.state.phase is Phase.APPROVED and d.state.proposal.approved_by == "op"
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
    assert [(type(e), e.proposal_hash, e.reason, e.key_id) for e in out] == [  # type: ignore[attr-defined]
        (ev.Rejected, digest, "tone", SIGNED["key_id"])
    ]
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
    assert _rolled(out) == [(g2, g1, "manual rollback", "op")]
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
    assert _rolled(out) == [(GENESIS, GENESIS, "manual rollback", "op")]
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
    assert _rolled(out) == [(g1, GENESIS, "manual rollback", "op")]
    assert d.state.head == GENESIS and d.state.phase is Phase.IDLE and d.state.burn_in is None
    check_invariants(d.state)
