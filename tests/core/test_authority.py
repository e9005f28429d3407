"""The verified fold (``evo_core.authority``): what each signed record signs, and every record
the state machine could not have produced, or whose authority does not verify with the keys the
ledger trusted when it was appended, is flagged by seq and never applied. Pure: the core's test
Driver, the fixed test key (``tests.operator_key``) and a second key for rotation."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from msgspec.structs import replace

from adapters.operator import signing
from evo_core import authority
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.decide import decide
from evo_core.state import Phase, State
from evo_core.window import draft_proposal
from tests import operator_key
from tests.core.helpers import (
    BAD_RECALL_LAWS,
    BASELINE,
    BETTER,
    GENESIS,
    GOOD,
    LEDGER_ID,
    SIGNED,
    STEP,
    Driver,
    proposal_hash,
    vfold,
)

K1, KID1 = operator_key.PRIVATE, operator_key.KID
K2 = Ed25519PrivateKey.from_private_bytes(bytes(range(100, 132)))
PUB2 = signing.public_raw(K2)
KID2 = signing.key_id(PUB2)
# a key no ledger here trusts: what the agent could make itself
STRANGER = Ed25519PrivateKey.from_private_bytes(bytes(range(200, 232)))
STRANGER_KID = signing.key_id(signing.public_raw(STRANGER))


def flagged(state: State, event: ev.Event, says: str) -> State:
    """Fold ``event``: it must be flagged at the next seq, naming ``says``, and change nothing
    but the record count and the flags."""
    after = STEP(state, event)
    assert len(after.flagged) == len(state.flagged) + 1, f"{ev.event_name(event)} was applied"
    flag = after.flagged[-1]
    assert flag.seq == state.records and flag.type == ev.event_name(event)
    assert says in flag.reason, flag.reason
    assert replace(after, records=state.records, flagged=state.flagged) == state
    return after


def applies(state: State, event: ev.Event) -> State:
    after = STEP(state, event)
    assert after.flagged == state.flagged, after.flagged[-1]
    return after


def checkpoint(state: State) -> tuple[int, str]:
    """A checkpoint naming the last record (the core checks that it is an earlier record)."""
    return Driver(state=state).checkpoint()


def approval(state: State, key: Ed25519PrivateKey = K1, action: str = "approve",
             cp: tuple[int, str] | None = None) -> ev.Approved | ev.Rejected:
    """The record `evo approve` (or `reject`) writes, signed by ``key`` for the pending proposal."""
    assert state.proposal is not None
    seq, digest = cp or checkpoint(state)
    sig = signing.sign(key, authority.proposal_message(state, action, seq, digest))
    common: dict[str, Any] = dict(
        proposal_hash=state.proposal.hash, operator="op", signature=sig,
        key_id=signing.key_id(signing.public_raw(key)), checkpoint_seq=seq, checkpoint_hash=digest,
    )
    if action == "approve":
        return ev.Approved(**common)
    return ev.Rejected(reason="no", **common)


def rolled_back(state: State, to: str, key: Ed25519PrivateKey | None = K1, source: str | None = None) -> ev.RolledBack:
    """An operator's rollback record from HEAD to ``to``, signed by ``key`` (None: unsigned)."""
    source = source or state.head or ""
    seq, digest = checkpoint(state)
    if key is None:
        return ev.RolledBack(from_generation=source, to_generation=to, reason="r", operator="luna")
    sig = signing.sign(key, authority.rollback_message(state.ledger_id, source, to, seq, digest))
    return ev.RolledBack(
        from_generation=source, to_generation=to, reason="r", operator="op", signature=sig,
        key_id=signing.key_id(signing.public_raw(key)), checkpoint_seq=seq, checkpoint_hash=digest,
    )


def trusted(state: State, signer: Ed25519PrivateKey, public: bytes, kid: str | None = None) -> ev.KeyTrusted:
    seq, digest = checkpoint(state)
    kid = kid or signing.key_id(public)
    sig = signing.sign(signer, authority.trust_message(state.ledger_id, "add", kid, public.hex(), seq, digest))
    return ev.KeyTrusted(
        key_id=kid, public=public.hex(), operator="op", comment="second", signer=signing.key_id(signing.public_raw(signer)),
        signature=sig, checkpoint_seq=seq, checkpoint_hash=digest,
    )


def revoked(state: State, signer: Ed25519PrivateKey, kid: str) -> ev.KeyRevoked:
    seq, digest = checkpoint(state)
    sig = signing.sign(signer, authority.trust_message(state.ledger_id, "revoke", kid, "", seq, digest))
    return ev.KeyRevoked(
        key_id=kid, operator="op", reason="rotated", signer=signing.key_id(signing.public_raw(signer)),
        signature=sig, checkpoint_seq=seq, checkpoint_hash=digest,
    )


def refold(events: list[ev.Event]) -> State:
    """The whole history folded again from nothing, as every process does when it starts."""
    return vfold(events, State())


# ---------------------------------------------------------------- what is signed


def test_messages_are_exactly_the_documented_bytes() -> None:
    assert authority.approval_message("L", "approve", "P", "C", "A", "M", 7, "H") == (
        b"evo-approve-v2\nL\nP\nC\nA\nM\n7:H\n"
    )
    assert authority.approval_message("L", "reject", "P", "C", "A", "M", 0, "H") == (
        b"evo-reject-v2\nL\nP\nC\nA\nM\n0:H\n"
    )
    assert authority.autonomy_message("L", True, 3, 5, "H") == b"evo-autonomy-v2\nL\non\n3\n5:H\n"
    assert authority.autonomy_message("L", False, 0, 5, "H") == b"evo-autonomy-v2\nL\noff\n0\n5:H\n"
    assert authority.rollback_message("L", "S", "T", 9, "H") == b"evo-rollback-v1\nL\nS\nT\n9:H\n"
    assert authority.trust_message("L", "add", "K", "PUB", 2, "H") == b"evo-trust-v1\nL\nadd\nK\nPUB\n2:H\n"
    assert authority.trust_message("L", "revoke", "K", "", 2, "H") == b"evo-trust-v1\nL\nrevoke\nK\n-\n2:H\n"
    assert authority.checkpoint_text(4, "H") == "4:H"
    with pytest.raises(ValueError):
        authority.approval_message("L", "autonomy", "P", "C", "A", "M", 0, "H")
    with pytest.raises(ValueError):
        authority.trust_message("L", "rotate", "K", "", 0, "H")


def test_the_proposal_message_is_recomputed_from_the_ledger() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    state = d.state
    assert state.proposal is not None
    cand = state.candidates[state.proposal.proposal.candidate]
    assert cand.archive_hash and cand.model_hash
    assert authority.proposal_message(state, "approve", 3, "H") == authority.approval_message(
        LEDGER_ID, "approve", state.proposal.hash, cand.id, cand.archive_hash, cand.model_hash, 3, "H"
    )
    assert state.ledger_id == LEDGER_ID


# ---------------------------------------------------------------- rollback


def test_a_signed_rollback_verifies_and_an_unsigned_or_forged_one_is_flagged() -> None:
    d = Driver().genesis()
    g1 = d.promote()
    g2 = d.promote()
    state = d.state
    assert state.head == g2
    flagged(state, rolled_back(state, g1, key=None), "unsigned rollback")
    flagged(state, rolled_back(state, g1, key=STRANGER), f"key {STRANGER_KID} is not trusted")
    good = rolled_back(state, g1)
    forged = replace(good, signature=("0" if good.signature[0] != "0" else "1") + good.signature[1:])
    flagged(state, forged, f"does not verify for rollback {g2} -> {g1}")
    # a signature for another target does not move HEAD anywhere else
    flagged(state, replace(good, to_generation=GENESIS), f"does not verify for rollback {g2} -> {GENESIS}")
    # nor from another HEAD
    flagged(state, replace(good, from_generation=g1, to_generation=GENESIS), f"it rolls back from {g1}, HEAD is {g2}")
    after = applies(state, good)
    assert after.head == g1 and g2 in after.revoked
    # the Driver's rollback, signed as `evo rollback --key` signs it, verifies the same way
    d.rollback()
    assert d.state.head == g1 and not d.state.flagged


def test_rollback_to_a_never_promoted_or_a_revoked_generation_is_flagged() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, BAD_RECALL_LAWS])
    losers = [c for c in d.candidates() if d.state.proposal and c != d.state.proposal.proposal.candidate]
    d.approve()
    d.shadow()
    d.burn_in()
    g1 = d.state.head
    g2 = d.promote()
    state = d.state
    for never in losers + ["Luna-G077-x-c1"]:
        flagged(state, rolled_back(state, never), f"{never} was never HEAD")
    d.rollback(to=g1)  # the operator rolls G2 back: it is revoked
    state = d.state
    assert state.head == g1 and state.revoked == (g2,)
    flagged(state, rolled_back(state, g2), f"{g2} was rolled back by an earlier rollback (revoked)")
    # signed and all, but the core never signs it either
    with pytest.raises(Exception, match="revoked"):
        decide(state, operator_key.sign_marked(state, cmd.Rollback(**SIGNED, operator="op", to=g2), checkpoint(state)))
    applies(state, rolled_back(state, GENESIS))  # to a generation still promoted and not revoked: fine


def test_the_automatic_rollback_only_returns_to_the_generation_head_replaced() -> None:
    d = Driver().genesis()
    g1 = d.promote()
    d.window([GOOD, BETTER, "fail"])
    d.approve()
    d.shadow()
    assert d.state.phase is Phase.BURN_IN and d.state.burn_in is not None
    g2 = d.state.head
    assert g2 is not None and d.state.burn_in.previous_head == g1
    # before the burn-in failed, no automatic rollback
    auto = ev.RolledBack(from_generation=g2, to_generation=g1, reason="forged", automatic=True)
    flagged(d.state, auto, "an automatic rollback without a failed burn-in")
    d.answers(50, errors=40)
    d.beat_to(d.state.burn_in.until_cycle)
    failed, rollback = decide(d.state, cmd.CompleteBurnIn(config=d.config))
    assert isinstance(failed, ev.BurnInFailed) and isinstance(rollback, ev.RolledBack) and rollback.automatic
    state = applies(d.state, failed)
    flagged(state, replace(rollback, to_generation=GENESIS), f"may only return to {g1}, the generation HEAD replaced")
    after = applies(state, rollback)
    assert after.head == g1 and after.phase is Phase.IDLE and g2 in after.revoked
    # once idle, an automatic rollback is a forgery
    flagged(after, ev.RolledBack(from_generation=g1, to_generation=GENESIS, reason="x", automatic=True),
            "an automatic rollback without a failed burn-in")


# ---------------------------------------------------------------- keys


def test_key_rotation_keeps_the_history_signed_before_a_revocation() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    old_approval = d.approve()[0]  # signed by key 1, before it is revoked
    d.shadow()
    d.burn_in()
    state = d.state
    add = trusted(state, K1, PUB2)
    state = applies(state, add)
    assert set(state.keys) == {KID1, KID2} and state.keys[KID2].since == state.records - 1
    revoke = revoked(state, K2, KID1)
    state = applies(state, revoke)
    assert set(state.keys) == {KID2} and state.revoked_keys == (KID1,)
    d.state = state
    d.events += [add, revoke]

    d.window([GOOD, BETTER, "fail"])
    by_old = approval(d.state, K1)
    flagged(d.state, by_old, f"key {KID1} was revoked")
    flagged(d.state, approval(d.state, K1, "reject"), f"key {KID1} was revoked")
    by_new = approval(d.state, K2)
    d.state = applies(d.state, by_new)
    d.events.append(by_new)
    assert d.state.phase is Phase.APPROVED

    # re-folded from the start: key 1's approval made before its revocation still verifies
    again = refold(d.events)
    assert again == d.state and not again.flagged
    assert old_approval in d.events and isinstance(old_approval, ev.Approved) and old_approval.key_id == KID1
    # key 1 can no longer add a key, revoke one, or change autonomy
    flagged(again, trusted(again, K1, signing.public_raw(STRANGER)), f"key {KID1} was revoked")
    flagged(again, revoked(again, K1, KID2), f"key {KID1} was revoked")
    seq, digest = checkpoint(again)
    sig = signing.sign(K1, authority.autonomy_message(again.ledger_id, True, 0, seq, digest))
    flagged(again, ev.AutonomyChanged(enabled=True, operator="op", key_id=KID1, signature=sig, nonce=0,
                                      checkpoint_seq=seq, checkpoint_hash=digest), f"key {KID1} was revoked")


def test_a_key_added_or_revoked_without_a_trusted_signature_is_flagged() -> None:
    d = Driver().genesis()
    state = d.state
    unsigned = ev.KeyTrusted(key_id=KID2, public=PUB2.hex(), operator="luna")
    flagged(state, unsigned, "unsigned trust in key")
    # the core never writes one either: only the keys pinned with a new workspace are unsigned
    with pytest.raises(Exception, match="signed with a key the ledger trusts"):
        decide(state, cmd.TrustKey(key_id=KID2, public=PUB2.hex(), operator="luna"))
    flagged(state, trusted(state, STRANGER, PUB2), f"key {STRANGER_KID} is not trusted")
    flagged(state, trusted(state, K2, PUB2), f"key {KID2} is not trusted")  # vouching for itself
    good = trusted(state, K1, PUB2)
    flagged(state, replace(good, public=signing.public_raw(STRANGER).hex(), key_id=STRANGER_KID),
            f"does not verify for trust in key {STRANGER_KID}")
    flagged(state, replace(good, signature="", signer=""), "unsigned trust")
    state = applies(state, good)
    unsigned_revoke = ev.KeyRevoked(key_id=KID1, operator="luna", reason="x", signer="", signature="")
    flagged(state, unsigned_revoke, "unsigned revocation")
    flagged(state, revoked(state, STRANGER, KID1), "is not trusted")
    flagged(state, revoked(state, K1, STRANGER_KID), f"key {STRANGER_KID} is not trusted")


def test_a_key_id_that_is_not_the_public_keys_is_flagged() -> None:
    d = Driver().genesis()
    state = d.state
    flagged(state, trusted(state, K1, PUB2, kid="0" * 16), "key id 0000000000000000 is not the id of its 32-byte public key")
    flagged(state, trusted(state, K1, PUB2, kid=KID1), f"key id {KID1} is not the id")  # another key's id
    flagged(state, replace(trusted(state, K1, PUB2), public="zz" * 32), "its public key is not hex")
    flagged(state, replace(trusted(state, K1, PUB2), public=PUB2.hex()[:-2]), "is not the id of its 32-byte public key")
    # pinned before the genesis too: the wrong id is never trusted
    empty = State(ledger_id=LEDGER_ID)
    flagged(empty, ev.KeyTrusted(key_id="1" * 16, public=PUB2.hex(), operator="init"), "is not the id")
    pinned = applies(empty, ev.KeyTrusted(key_id=KID2, public=PUB2.hex(), operator="init"))
    assert pinned.pinned_keys == (KID2,) and KID2 in pinned.keys


def test_a_signature_whose_checkpoint_names_no_earlier_record_is_flagged() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    state = d.state
    n = state.records
    for seq in (n, n + 100):  # the record itself, or one in the future: signed for real all the same
        flagged(state, approval(state, cp=(seq, "ab" * 32)), f"its checkpoint {seq}:abababababababab names no earlier record")
    flagged(state, approval(state, cp=(n - 1, "not-a-hash")), "names no earlier record")
    assert approval(state, cp=(-1, "ab" * 32)).checkpoint_seq == -1
    flagged(state, approval(state, cp=(-1, "ab" * 32)), "names no earlier record")
    # the signature covers the checkpoint: moving it breaks the signature
    good = approval(state, cp=(n - 1, "ab" * 32))
    flagged(state, replace(good, checkpoint_seq=n - 2), "does not verify")
    flagged(state, replace(good, checkpoint_hash="cd" * 32), "does not verify")
    applies(state, good)
    applies(state, approval(state, cp=(0, "ab" * 32)))  # any earlier record will do here (`evo verify` checks its hash)


# ---------------------------------------------------------------- what the machine could have produced


def _window_up_to_proposal(d: Driver, outcomes: list[Any]) -> None:
    """Everything of a window but its conclusion: the forged Proposed goes where it would."""
    d.open_window()
    d.do(cmd.SpawnCandidates(config=d.config))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=d.config))
    for cid, outcome in zip(d.candidates(), outcomes):
        d.train(cid, outcome)
    d.do(cmd.Rank())
    d.freeze_all()


def test_a_proposal_of_a_failed_candidate_is_flagged() -> None:
    d = Driver().genesis()
    _window_up_to_proposal(d, [GOOD, BAD_RECALL_LAWS, "fail"])
    state = d.state
    draft, _ = draft_proposal(state)
    assert draft is not None
    failed = [c for c in state.window_candidates() if not c.passed]
    assert len(failed) == 2
    for cand in failed:
        forged = replace(draft, candidate=cand.id)
        flagged(state, ev.Proposed(proposal=forged, proposal_hash=proposal_hash(forged)),
                f"it proposes {cand.id}, not the proposal the window's verified records make ({draft.candidate})")
    flagged(state, ev.Proposed(proposal=draft, proposal_hash="ab" * 32), "its proposal hash is not the hash of its proposal")
    inflated = replace(draft, score=draft.score + 1, improvement=draft.improvement + 1)
    flagged(state, ev.Proposed(proposal=inflated, proposal_hash=proposal_hash(inflated)), "not the proposal")
    applies(state, ev.Proposed(proposal=draft, proposal_hash=proposal_hash(draft)))


def test_an_old_proposals_hash_and_a_byte_copy_of_its_approval_are_both_flagged() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    assert d.state.proposal is not None
    old_hash = d.state.proposal.hash
    old_approval = d.approve()[0]
    d.rollback()  # the operator aborts the approved rollout
    assert d.state.phase is Phase.IDLE

    _window_up_to_proposal(d, [GOOD, BAD_RECALL_LAWS, "fail"])
    state = d.state
    draft, _ = draft_proposal(state)
    assert draft is not None
    failed = next(c for c in state.window_candidates() if not c.passed)
    forged = ev.Proposed(proposal=replace(draft, candidate=failed.id), proposal_hash=old_hash)
    state = flagged(state, forged, f"it proposes {failed.id}")
    flagged(state, old_approval, "Approved is not allowed in phase 'window'")  # nothing is pending
    # the real draft carrying the old hash: flagged as well
    state = flagged(state, ev.Proposed(proposal=draft, proposal_hash=old_hash), "its proposal hash is not the hash")
    # once the real proposal is pending, the copy names another proposal, and its signature another candidate
    state = applies(state, ev.Proposed(proposal=draft, proposal_hash=proposal_hash(draft)))
    flagged(state, old_approval, f"it names proposal {old_hash[:16]}")
    assert state.proposal is not None
    flagged(state, replace(old_approval, proposal_hash=state.proposal.hash), "does not verify for approve of proposal")
    assert state.phase is Phase.PROPOSED


def test_a_promotion_without_a_passed_shadow_is_flagged() -> None:
    d = Driver().genesis()
    d.window([GOOD, BETTER, "fail"])
    assert d.state.proposal is not None
    cand, digest = d.state.proposal.proposal.candidate, d.state.proposal.hash

    def promoted(state: State, generation: str = cand) -> ev.Promoted:
        return ev.Promoted(generation=generation, previous_head=GENESIS, proposal_hash=digest,
                           cycle=state.cycle, burn_in_until=state.cycle + 3)

    flagged(d.state, promoted(d.state), "Promoted is not allowed in phase 'proposed'")
    d.approve()
    flagged(d.state, promoted(d.state), "Promoted is not allowed in phase 'approved'")
    d.do(cmd.StartShadow(config=d.config))
    assert d.state.phase is Phase.SHADOW
    flagged(d.state, promoted(d.state), f"the shadow of {cand} has not passed")
    # a shadow that failed: the same
    d.do(cmd.RecordShadow(exact=False, similarity=0.1, query_id="q"))
    assert d.state.shadow is not None
    d.beat_to(d.state.shadow.until_cycle)
    completed = decide(d.state, cmd.CompleteShadow(config=d.config))
    assert [type(e) for e in completed] == [ev.ShadowCompleted]
    state = applies(d.state, completed[0])
    assert state.shadow is None or not state.shadow.passed
    flagged(state, promoted(state), "")
    # and a passed shadow of the approved candidate promotes only that candidate over the HEAD it was proposed against
    d2 = Driver().genesis()
    d2.window([GOOD, BETTER, "fail"])
    d2.approve()
    d2.do(cmd.StartShadow(config=d2.config))
    for i in range(3):
        d2.do(cmd.RecordShadow(exact=True, similarity=1.0, query_id=f"q{i}"))
    assert d2.state.shadow is not None
    d2.beat_to(d2.state.shadow.until_cycle)
    done, promotion = decide(d2.state, cmd.CompleteShadow(config=d2.config))
    assert isinstance(promotion, ev.Promoted)
    passed = applies(d2.state, done)
    flagged(passed, replace(promotion, proposal_hash="ab" * 32), "no verified approval of this proposal")
    flagged(passed, replace(promotion, previous_head="Luna-G009-x-c1"), "not the approved proposal")
    applies(passed, promotion)


def test_a_replayed_autonomy_change_is_flagged() -> None:
    d = Driver().genesis()
    on = d.do(cmd.ChangeAutonomy(enabled=True, operator="op", nonce=0, **SIGNED))[0]
    off = d.do(cmd.ChangeAutonomy(enabled=False, operator="op", nonce=1, **SIGNED))[0]
    assert isinstance(on, ev.AutonomyChanged) and isinstance(off, ev.AutonomyChanged)
    state = d.state
    assert not state.autonomy and state.autonomy_changes == 2
    flagged(state, on, "nonce 0 is stale: the next autonomy change is nonce 2")
    flagged(state, replace(on, nonce=2), "does not verify for autonomy on at nonce 2")
    flagged(state, replace(on, nonce=2, signature="", key_id=""), "unsigned autonomy on")
    # the core refuses the replay before anything is appended
    with pytest.raises(Exception, match="nonce 0"):
        decide(state, cmd.ChangeAutonomy(enabled=True, operator="op", nonce=0, signature=on.signature, key_id=KID1))
    # an autonomous approval without a verified grant is flagged too
    d.window([GOOD, BETTER, "fail"])
    assert d.state.proposal is not None
    flagged(d.state, ev.Approved(proposal_hash=d.state.proposal.hash, operator="evo", autonomous=True),
            "an autonomous approval while autonomy is off")


def test_heartbeats_are_never_flagged_for_authority() -> None:
    """A forged record never stops the agent's clock: in every phase, after any forgery, the next
    heartbeat applies (only one that does not advance the cycle is refused, for that reason)."""
    d = Driver().genesis()
    forgeries: list[ev.Event] = [
        ev.Approved(proposal_hash="ab" * 32, operator="luna"),
        ev.RolledBack(from_generation=GENESIS, to_generation="Luna-G009-x-c1", reason="x"),
        ev.KeyTrusted(key_id=KID2, public=PUB2.hex(), operator="luna"),
        ev.AutonomyChanged(enabled=True, operator="luna", key_id=KID1, signature="ab" * 64, nonce=0),
    ]
    phases = []

    def forge_and_beat() -> None:
        for forged in forgeries:
            n = len(d.state.flagged)
            d.state = STEP(d.state, forged)
            assert len(d.state.flagged) == n + 1
            cycle = d.state.cycle
            d.beat()  # vfold: asserts nothing flagged
            assert d.state.cycle == cycle + 1
        phases.append(d.state.phase)

    forge_and_beat()
    d.open_window()  # the window opens on schedule, forgeries and all
    forge_and_beat()
    d.do(cmd.SpawnCandidates(config=d.config))
    d.state = STEP(d.state, ev.Heartbeat(cycle=d.state.cycle + 1))
    d.do(cmd.RecordBaseline(metrics=GOOD, config=d.config))
    for cid in d.candidates():
        d.train(cid, BETTER)
    d.do(cmd.Rank())
    d.freeze_all()
    d.conclude()
    forge_and_beat()
    d.approve()
    forge_and_beat()
    d.do(cmd.StartShadow(config=d.config))
    forge_and_beat()
    assert phases == [Phase.IDLE, Phase.WINDOW, Phase.PROPOSED, Phase.APPROVED, Phase.SHADOW]
    # the agent's stale heartbeat is the one heartbeat refused, and it names why
    flagged(d.state, ev.Heartbeat(cycle=d.state.cycle), f"cycle {d.state.cycle} does not follow")
    # no key trusted at all (a workspace made without one): the clock still runs, windows open
    bare = Driver()
    bare.do(cmd.RegisterGenesis(generation=GENESIS, model_hash="ab" * 32))
    bare.state = STEP(bare.state, ev.Approved(proposal_hash="ab" * 32, operator="luna"))
    bare.open_window()
    assert not bare.state.keys and len(bare.state.flagged) == 1
