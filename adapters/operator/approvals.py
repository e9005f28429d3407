"""The operator's signed decisions as use cases: approve or reject the pending proposal, roll
back, turn the scheduler's autonomy on or off, trust or revoke a key. The CLI
(``adapters/cli/operator.py``) only parses, gets the credentials and prints.

Each one signs what ``evo_core.authority`` says it signs, with the checkpoint of the ledger the
operator sees now (or, offline, the one given with the signature), verifies the signature
against the keys the ledger trusts, and only then appends; the verified fold would not apply
anything else anyway. A forged, wrongly-signed, untrusted-key or stale one is refused
(``Refused``, one line) and recorded as ``ApprovalRefused`` for auditors; nothing else changes.
The checkpoint signed is also kept in the operator's witness, outside the workspace
(``adapters.operator.witness``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evo_core import authority
from evo_core import commands as cmd
from evo_core.decide import decide
from evo_core.decide_rollout import rollback_target
from evo_core.errors import DomainError, InvalidInput, StaleProposal
from evo_core.state import Phase, State
from ledger.tail import Checkpoint

if TYPE_CHECKING:
    from adapters.runtime.app import App, Outcome


class Refused(DomainError):
    """A signed command refused (and recorded as ApprovalRefused)."""


@dataclass
class Credentials:
    """Who signs: a private key here, or a signature made elsewhere with its key id and the
    checkpoint it signed (``evo ... --print-message`` shows both)."""

    key_id: str
    private: Any = None  # signing.PrivateKey when signing here
    signature: str = ""  # given, when signed offline
    checkpoint: Checkpoint | None = None  # given with an offline signature

    def signature_for(self, message: bytes) -> str:
        from adapters.operator import signing

        return signing.sign(self.private, message) if self.private is not None else self.signature


def refuse(app: App, action: str, operator: str, reason: str, digest: str, kid: str, what: str, hint: str = "") -> None:
    """Record the refusal (unless it would withdraw an approval made validly meanwhile) and
    raise it as one line, with ``hint`` (what to do about it) after the reason."""
    reason = " ".join(reason.split())
    command = cmd.RefuseApproval(action=action, operator=operator, reason=reason, proposal_hash=digest, key_id=kid)

    def guarded(state: State) -> Any:
        if action == "approve" and state.phase is Phase.APPROVED and state.proposal and state.proposal.hash == digest:
            return []
        return decide(state, command)

    state, checkpoint, events = app.store.execute(guarded)
    if events:
        app.sync(state)
    where = f" (recorded as ApprovalRefused, seq {checkpoint.seq})" if events else ""
    advice = f"; {hint}" if hint else ""
    raise Refused(f"{what} refused: {reason}{advice}{where}")


@dataclass(frozen=True)
class Signed:
    """One signed operator command: what it is called, the message for a checkpoint, and the
    command that carries the signature."""

    action: str  # ApprovalRefused.action: approve, reject, autonomy, rollback, trust
    what: str  # "approval", "rollback", ...
    operator: str
    message: Callable[[State, Checkpoint], bytes]
    command: Callable[[str, str, Checkpoint], cmd.Command]  # (signature, key id, checkpoint)
    subject: str = ""  # the proposal hash a refusal names


def _holds(app: App, cp: Checkpoint) -> bool:
    """Is ``cp`` a record of this ledger (that seq, that hash)?"""
    if cp.seq < 0:
        return False
    records = app.store.ledger.records(cp.seq)
    try:
        record = next(records, None)
    finally:
        records.close()  # type: ignore[attr-defined]
    return record is not None and record.seq == cp.seq and record.hash == cp.hash


def current_checkpoint(app: App) -> Checkpoint:
    return app.store.load().checkpoint


def message_for(app: App, signed: Signed, checkpoint: Checkpoint | None = None) -> bytes:
    """The exact bytes to sign (offline) at ``checkpoint`` (default: the ledger's end now)."""
    return signed.message(app.state(), checkpoint or current_checkpoint(app))


def execute_signed(app: App, signed: Signed, creds: Credentials) -> Outcome:
    from adapters.operator import signing, witness

    state = app.state()
    cp = creds.checkpoint or current_checkpoint(app)
    message = signed.message(state, cp)
    signature = creds.signature_for(message)
    problem = authority.signature_problem(state, signing.CRYPTO, creds.key_id, signature, message, signed.what)
    if problem is None and not _holds(app, cp):
        problem = authority.SignatureProblem(
            authority.SignatureFault.MISMATCH, f"checkpoint {cp.seq} is not a record of this ledger (not with hash {cp.hash[:16]})"
        )
    if problem:
        refuse(app, signed.action, signed.operator, problem.text, signed.subject, creds.key_id, signed.what,
               signing.hint(problem.fault))
    outcome = app.execute(signed.command(signature, creds.key_id, cp))
    if witness.record(app.ws.home, state.ledger_id, cp.seq, cp.hash, signed.action) is None:
        print(f"evo: warning: could not keep checkpoint {cp.seq} in {witness.witness_path(app.ws.home)}", file=sys.stderr)
    return outcome


# ---------------------------------------------------------------- approve, reject


@dataclass(frozen=True)
class ProposalDecision:
    action: str  # "approve" or "reject"
    operator: str
    given: str | None  # the proposal hash (or its prefix) the operator named, if any
    reason: str = ""  # a rejection's

    @property
    def what(self) -> str:
        return "approval" if self.action == "approve" else "rejection"


def proposal_decision(app: App, d: ProposalDecision, creds: Credentials | None) -> Signed:
    """The signed approval or rejection of the pending proposal, after the core's own checks (a
    proposal pending? the one named? a reason?); a stale one is refused and recorded when the
    operator signed."""
    state = app.state()

    def command(signature: str, kid: str, cp: Checkpoint, digest: str | None) -> cmd.Command:
        common: dict[str, Any] = dict(
            operator=d.operator, proposal_hash=digest, signature=signature, key_id=kid,
            checkpoint_seq=cp.seq, checkpoint_hash=cp.hash,
        )
        if d.action == "approve":
            return cmd.Approve(**common)
        return cmd.Reject(reason=d.reason, **common)

    try:
        decide(state, command("-", "-", Checkpoint(-1, ""), d.given))  # dry: nothing is appended
    except StaleProposal as exc:
        if creds is None:
            raise
        pending = state.proposal.hash if state.proposal else ""
        refuse(app, d.action, d.operator, str(exc), d.given or pending, creds.key_id, d.what)
    assert state.proposal is not None  # the dry run raised NothingPending otherwise
    digest = state.proposal.hash
    return Signed(
        action=d.action, what=d.what, operator=d.operator, subject=digest,
        message=lambda s, cp: authority.proposal_message(s, d.action, cp.seq, cp.hash),
        command=lambda signature, kid, cp: command(signature, kid, cp, digest),
    )


def decide_proposal(app: App, d: ProposalDecision, creds: Credentials) -> Outcome:
    return execute_signed(app, proposal_decision(app, d, creds), creds)


# ---------------------------------------------------------------- rollback


def rollback(app: App, to: str | None, reason: str, operator: str) -> Signed:
    state = app.state()
    target = rollback_target(state, to)  # the core's refusals (never promoted, revoked) come first
    source = state.head or ""
    return Signed(
        action="rollback", what=f"rollback {source} -> {target}", operator=operator,
        message=lambda s, cp: authority.rollback_message(s.ledger_id, source, target, cp.seq, cp.hash),
        command=lambda signature, kid, cp: cmd.Rollback(
            operator=operator, to=target, reason=reason, signature=signature, key_id=kid,
            checkpoint_seq=cp.seq, checkpoint_hash=cp.hash,
        ),
    )


# ---------------------------------------------------------------- autonomy


def autonomy(app: App, enabled: bool, operator: str) -> Signed:
    """Turning autonomy on or off: bound to the ledger and the next nonce."""
    state = app.state()
    if enabled == state.autonomy:
        raise InvalidInput(f"autonomy is already {'on' if enabled else 'off'}")
    nonce = state.autonomy_changes
    setting = "on" if enabled else "off"
    return Signed(
        action="autonomy", what=f"autonomy {setting} at nonce {nonce}", operator=operator,
        message=lambda s, cp: authority.autonomy_message(s.ledger_id, enabled, nonce, cp.seq, cp.hash),
        command=lambda signature, kid, cp: cmd.ChangeAutonomy(
            enabled=enabled, operator=operator, key_id=kid, signature=signature, nonce=nonce,
            checkpoint_seq=cp.seq, checkpoint_hash=cp.hash,
        ),
    )


# ---------------------------------------------------------------- trust


def trust_add(app: App, public: bytes, comment: str, operator: str) -> Signed:
    from adapters.operator.crypto import key_id

    kid, hexkey = key_id(public), public.hex()
    if kid in app.state().keys:
        raise InvalidInput(f"key {kid} is already trusted")
    return Signed(
        action="trust", what=f"trust in key {kid}", operator=operator,
        message=lambda s, cp: authority.trust_message(s.ledger_id, "add", kid, hexkey, cp.seq, cp.hash),
        command=lambda signature, signer, cp: cmd.TrustKey(
            key_id=kid, public=hexkey, operator=operator, comment=comment, signer=signer, signature=signature,
            checkpoint_seq=cp.seq, checkpoint_hash=cp.hash,
        ),
    )


def trust_revoke(app: App, kid: str, reason: str, operator: str) -> Signed:
    state = app.state()
    decide(state, cmd.RevokeKey(key_id=kid, operator=operator, reason=reason, signer="-", signature="-"))  # dry
    return Signed(
        action="trust", what=f"revocation of key {kid}", operator=operator,
        message=lambda s, cp: authority.trust_message(s.ledger_id, "revoke", kid, "", cp.seq, cp.hash),
        command=lambda signature, signer, cp: cmd.RevokeKey(
            key_id=kid, operator=operator, reason=reason, signer=signer, signature=signature,
            checkpoint_seq=cp.seq, checkpoint_hash=cp.hash,
        ),
    )
