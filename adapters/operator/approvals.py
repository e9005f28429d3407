"""The operator's signed decisions as use cases: approve or reject the pending proposal, turn the
scheduler's autonomy on or off. The CLI (``adapters/cli/operator.py``) only parses, gets the
credentials and prints.

Every signature is verified here, against config.toml's ``[approval] trusted_keys``, before
anything is appended (``adapters.operator.signing`` says what is signed). A forged,
wrongly-signed, untrusted-key or stale one is refused (``Refused``, one line) and recorded as
``ApprovalRefused`` for auditors; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evo_core import commands as cmd
from evo_core.decide import decide
from evo_core.errors import DomainError, InvalidInput, StaleProposal
from evo_core.state import Phase, State

if TYPE_CHECKING:
    from adapters.runtime.app import App, Outcome
    from evo_core.config import EvoConfig


class Refused(DomainError):
    """A signed command refused (and recorded as ApprovalRefused)."""


@dataclass
class Credentials:
    """Who signs: a private key here, or a signature made elsewhere with its key id."""

    key_id: str
    private: Any = None  # signing.PrivateKey when signing here
    signature: str = ""  # given, when signed offline

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

    def command(self, digest: str | None, signature: str, kid: str) -> cmd.Command:
        if self.action == "approve":
            return cmd.Approve(operator=self.operator, proposal_hash=digest, signature=signature, key_id=kid)
        return cmd.Reject(
            operator=self.operator, reason=self.reason, proposal_hash=digest, signature=signature, key_id=kid
        )


def _pending(app: App, d: ProposalDecision, creds: Credentials | None) -> tuple[str, bytes]:
    """The pending proposal's full hash and the exact bytes to sign, after the core's own checks
    (a proposal pending? the one named? a reason?); a stale one is refused and recorded when
    the operator signed."""
    from adapters.operator import signing

    state = app.state()
    try:
        decide(state, d.command(d.given, "-", "-"))  # dry: nothing is appended
    except StaleProposal as exc:
        if creds is None:
            raise
        pending = state.proposal.hash if state.proposal else ""
        refuse(app, d.action, d.operator, str(exc), d.given or pending, creds.key_id, d.what)
    assert state.proposal is not None  # the dry run raised NothingPending otherwise
    digest = state.proposal.hash
    return digest, signing.approval_message(signing.ledger_id(app), d.action, digest)


def proposal_message(app: App, d: ProposalDecision) -> bytes:
    """What the operator signs offline to approve or reject the pending proposal."""
    return _pending(app, d, None)[1]


def decide_proposal(app: App, config: EvoConfig, d: ProposalDecision, creds: Credentials) -> Outcome:
    """Sign the pending proposal's full hash, verify the signature, append the decision."""
    from adapters.operator import signing

    digest, message = _pending(app, d, creds)
    signature = creds.signature_for(message)
    problem = signing.signature_problem(config, creds.key_id, signature, message, f"proposal {digest[:16]}")
    if problem:
        refuse(app, d.action, d.operator, problem.text, digest, creds.key_id, d.what, problem.fault.hint)
    return app.execute(d.command(digest, signature, creds.key_id))


# ---------------------------------------------------------------- autonomy


def autonomy_message(app: App, enabled: bool) -> bytes:
    """What the operator signs to turn autonomy on or off: bound to the ledger and the next nonce."""
    from adapters.operator import signing

    state = app.state()
    if enabled == state.autonomy:
        raise InvalidInput(f"autonomy is already {'on' if enabled else 'off'}")
    return signing.autonomy_message(signing.ledger_id(app), enabled, state.autonomy_changes)


def change_autonomy(app: App, config: EvoConfig, enabled: bool, operator: str, creds: Credentials) -> Outcome:
    """Verify the signed change (a signature replayed from an older nonce is named so), append it."""
    from adapters.operator import signing

    message = autonomy_message(app, enabled)
    lid, nonce = signing.ledger_id(app), app.state().autonomy_changes
    setting = "on" if enabled else "off"
    signature = creds.signature_for(message)
    problem = signing.signature_problem(config, creds.key_id, signature, message, f"autonomy {setting} at nonce {nonce}")
    if problem and problem.fault is signing.SignatureFault.MISMATCH:
        for old in range(nonce):
            if not signing.signature_problem(config, creds.key_id, signature, signing.autonomy_message(lid, enabled, old), ""):
                problem = signing.SignatureProblem(
                    signing.SignatureFault.MISMATCH,
                    f"replayed: this signature is for autonomy {setting} at nonce {old}, the next change is nonce {nonce}",
                )
    if problem:
        refuse(app, "autonomy", operator, problem.text, "", creds.key_id, "autonomy change", problem.fault.hint)
    return app.execute(
        cmd.ChangeAutonomy(enabled=enabled, operator=operator, key_id=creds.key_id, signature=signature, nonce=nonce)
    )
