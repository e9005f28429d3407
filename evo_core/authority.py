"""Who may change what the agent runs: the rules of the verified fold (THREAT-MODEL.md).

The agent can append chain-valid records of any type with the project's own code, so a record
proves nothing by being in the ledger. Every process that acts on the history (the runner, the
router, the agent's API, ``evo status``, ``evo verify``) folds it through ``verified``: before a
record is applied, ``admit`` asks whether the state machine could have produced it and whether
its authority verifies; a record that fails is not applied (nothing it says is proposed,
approved, promoted or served) and is listed in ``State.flagged`` with its seq and the reason.
A heartbeat is never refused for authority, so a forgery never stops the agent's clock; HEAD
stays on the last verified generation.

What each record needs
----------------------
- every record: its phase accepts it (``transitions``) and it applies to the history before it;
- ``Heartbeat``: a cycle after the last one;
- ``GateEvaluated``: every gate's verdict recomputes from the recorded metrics, HEAD's baseline
  and the thresholds it names, and ``passed`` is all of them; ``CandidatesRanked``: the ranking
  the core computes; ``CandidateFrozen``: the candidate's own verdict;
- ``Proposed``: exactly the proposal ``window.draft_proposal`` makes of the verified state (the
  best candidate frozen as PASS in this window), and its hash is the blake3 of its bytes;
- ``Approved`` / ``Rejected``: the pending proposal, signed by a key the ledger trusts at that
  record (``approval_message``: the ledger id, the proposal hash, the candidate, its archive and
  model hashes recomputed from the ledger, and the checkpoint the operator saw); or, for an
  autonomous approval, autonomy on under a verified grant;
- ``AutonomyChanged``: the next nonce (a signed grant is single-use: replayed, it is stale),
  signed by a trusted key; ``KeyTrusted`` / ``KeyRevoked``: signed by a trusted key, except the
  keys pinned unsigned before the genesis (with the workspace: the ledger id hashes them);
- ``ShadowStarted``: the approved candidate; ``Promoted``: after a passed shadow of the approved
  proposal's candidate, from the HEAD it was proposed against;
- ``RolledBack``: automatic only right after a failed burn-in, and only to the generation HEAD
  replaced; otherwise signed by a trusted key (``rollback_message``); never to a generation
  that was never HEAD or that a rollback has revoked.

Signatures made before a key is revoked still verify: each record is checked with the keys the
ledger trusted when it was appended. Every operator signature also signs a checkpoint
``seq:hash`` of the ledger the operator saw: here it must name an earlier record; ``evo
verify`` checks its hash, so a rewritten history cannot carry old signatures forward.

The core does no cryptography itself (it imports only the standard library): ``Crypto`` is
injected (``adapters.operator.signing.CRYPTO``: blake3 and ed25519).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from msgspec.structs import replace

from evo_core import events as ev
from evo_core.errors import CorruptHistory, InvalidInput
from evo_core.gates import PAIRED, budget_breaches, generalize_gate, recall_gate, tone_gate
from evo_core.guards import is_hex64
from evo_core.reactions import CompleteBurnIn, CompleteShadow, reactions
from evo_core.state import CandidateStatus, Flag, Phase, State
from evo_core.transitions import accepts
from evo_core.window import draft_proposal, rank, verdict


class Crypto(Protocol):
    def digest(self, data: bytes) -> str:
        """blake3 of ``data``, 64 lowercase hex."""

    def key_id(self, public: bytes) -> str:
        """The id of a raw ed25519 public key (16 hex)."""

    def verifies(self, public: bytes, signature: bytes, message: bytes) -> bool:
        """Does ``signature`` of ``message`` verify with ``public``?"""


# ---------------------------------------------------------------- what is signed


def checkpoint_text(seq: int, digest: str) -> str:
    return f"{seq}:{digest}"


def approval_message(
    ledger_id: str, action: str, proposal_hash: str, candidate: str, archive_hash: str, model_hash: str,
    checkpoint_seq: int, checkpoint_hash: str,
) -> bytes:
    """What an approval (``action="approve"``) or a rejection (``"reject"``) signs."""
    if action not in ("approve", "reject"):
        raise ValueError(f"unknown signed action {action!r}")
    return (
        f"evo-{action}-v2\n{ledger_id}\n{proposal_hash}\n{candidate}\n{archive_hash}\n{model_hash}\n"
        f"{checkpoint_text(checkpoint_seq, checkpoint_hash)}\n"
    ).encode()


def proposal_message(state: State, action: str, checkpoint_seq: int, checkpoint_hash: str) -> bytes:
    """The approval or rejection message of the pending proposal, recomputed from the state:
    never from a hash a record carries."""
    pending = state.proposal
    if pending is None:
        raise InvalidInput("no proposal is pending")
    cand = state.candidates.get(pending.proposal.candidate)
    archive_hash = cand.archive_hash if cand else ""
    model_hash = cand.model_hash if cand else ""
    return approval_message(
        state.ledger_id, action, pending.hash, pending.proposal.candidate, archive_hash, model_hash,
        checkpoint_seq, checkpoint_hash,
    )


def autonomy_message(ledger_id: str, enabled: bool, nonce: int, checkpoint_seq: int, checkpoint_hash: str) -> bytes:
    setting = "on" if enabled else "off"
    return f"evo-autonomy-v2\n{ledger_id}\n{setting}\n{nonce}\n{checkpoint_text(checkpoint_seq, checkpoint_hash)}\n".encode()


def rollback_message(ledger_id: str, source: str, target: str, checkpoint_seq: int, checkpoint_hash: str) -> bytes:
    """The operator's rollback from HEAD ``source`` to ``target``."""
    return f"evo-rollback-v1\n{ledger_id}\n{source}\n{target}\n{checkpoint_text(checkpoint_seq, checkpoint_hash)}\n".encode()


def trust_message(ledger_id: str, action: str, kid: str, public: str, checkpoint_seq: int, checkpoint_hash: str) -> bytes:
    """Adding (``action="add"``, with the public key) or revoking (``"revoke"``) a key."""
    if action not in ("add", "revoke"):
        raise ValueError(f"unknown trust action {action!r}")
    return (
        f"evo-trust-v1\n{ledger_id}\n{action}\n{kid}\n{public or '-'}\n"
        f"{checkpoint_text(checkpoint_seq, checkpoint_hash)}\n"
    ).encode()


# ---------------------------------------------------------------- signatures


class SignatureFault(enum.Enum):
    """Why a signature does not count."""

    UNSIGNED = "unsigned"  # no signature or no key id
    UNTRUSTED = "untrusted"  # the ledger does not trust the key (never, or revoked)
    NOT_HEX = "not hex"
    WRONG_SIZE = "wrong size"  # not the 64 bytes of an ed25519 signature
    MISMATCH = "mismatch"  # it does not verify for this message (another proposal, nonce or workspace)


@dataclass(frozen=True)
class SignatureProblem:
    """A signature that does not count: the fault, and the line that says it (``str()``)."""

    fault: SignatureFault
    text: str

    def __str__(self) -> str:
        return self.text


def signature_problem(
    state: State, crypto: Crypto, kid: str, signature: str, message: bytes, what: str
) -> SignatureProblem | None:
    """None when ``signature`` (hex) of ``message`` verifies with ``kid``, a key the ledger
    trusts in ``state``; otherwise why not (``what`` names what was signed)."""
    if not signature or not kid:
        return SignatureProblem(SignatureFault.UNSIGNED, f"unsigned {what} (no signature or key id)")
    key = state.keys.get(kid)
    if key is None:
        why = "was revoked" if kid in state.revoked_keys else "is not trusted by this ledger"
        return SignatureProblem(SignatureFault.UNTRUSTED, f"key {kid[:40]} {why} (see `evo trust list`)")
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        return SignatureProblem(SignatureFault.NOT_HEX, f"the signature of {what} is not hex")
    if len(raw) != 64:
        return SignatureProblem(
            SignatureFault.WRONG_SIZE, f"the signature of {what} is {len(raw)} bytes, an ed25519 signature is 64"
        )
    if not crypto.verifies(bytes.fromhex(key.public), raw, message):
        return SignatureProblem(SignatureFault.MISMATCH, f"the signature by key {kid} does not verify for {what}")
    return None


def _checkpoint_problem(state: State, seq: int, digest: str) -> str | None:
    if not 0 <= seq < state.records or not is_hex64(digest):
        return f"its checkpoint {seq}:{digest[:16]} names no earlier record"
    if seq < state.last_signed:
        return (
            f"its checkpoint {seq} is older than the last signed record (seq {state.last_signed}): "
            "a signature is used once (replayed, or signed before another operator command: sign again)"
        )
    return None


def _signed(state: State, crypto: Crypto, kid: str, signature: str, message: bytes, what: str, seq: int, digest: str) -> str | None:
    problem = signature_problem(state, crypto, kid, signature, message, what)
    if problem is not None:
        return problem.text
    return _checkpoint_problem(state, seq, digest)


# ---------------------------------------------------------------- admission


def _gates_problem(state: State, e: ev.GateEvaluated) -> str | None:
    cand = state.candidates.get(e.candidate)
    if cand is None:
        return None  # evolve names what is missing
    head = state.window.baseline if state.window else None
    if head is None:
        return "no baseline of HEAD is recorded in this window: nothing to judge the gates against"
    if cand.status is not CandidateStatus.TRAINED:
        return f"{e.candidate} is {cand.status.value}, not trained: it cannot be evaluated"
    names = [g.name for g in e.gates]
    if names != ["recall", "generalize", "tone", "laws", "budget"]:
        return f"gates {names} are not the five gates"
    recall, general, tone, laws, budget = e.gates
    try:
        expected = {
            "recall": (
                recall_gate(e.metrics, head, epsilon=recall.threshold, confidence=recall.confidence or 0.95).passed
                if recall.method == PAIRED else e.metrics.recall >= recall.threshold
            ),
            "generalize": (
                generalize_gate(e.metrics, head, delta=general.threshold, confidence=general.confidence or 0.95).passed
                if general.method == PAIRED else e.metrics.generalize >= general.threshold
            ),
            "tone": tone_gate(e.metrics, theta=tone.threshold).passed,
            "laws": e.metrics.law_violations == 0,
            "budget": not budget_breaches(cand.budget_used, cand.budget) if cand.budget_used else True,
        }
    except (InvalidInput, ValueError, ZeroDivisionError) as exc:
        return f"its metrics do not recompute ({exc})"
    wrong = [g.name for g in e.gates if g.passed != expected[g.name]]
    if wrong:
        return f"the {', '.join(wrong)} gate verdicts do not follow from the recorded metrics and thresholds"
    if e.passed != all(expected.values()):
        return f"passed={e.passed} but its gates say {all(expected.values())}"
    return None


def _proposal_problem(state: State, e: ev.Proposed, crypto: Crypto) -> str | None:
    try:
        draft, reason = draft_proposal(state)
    except (InvalidInput, KeyError, AssertionError) as exc:
        return f"no proposal can be drafted here ({exc})"
    if draft is None:
        return f"nothing may be proposed in this window: {reason}"
    if e.proposal != draft:
        return f"it proposes {e.proposal.candidate}, not the proposal the window's verified records make ({draft.candidate})"
    cand = state.candidates[draft.candidate]
    if not (cand.frozen and cand.verdict == "PASS" and cand.window == draft.window):
        return f"{draft.candidate} is not frozen as PASS in window {draft.window}"
    if e.proposal_hash != crypto.digest(ev.encode_value(draft)):
        return "its proposal hash is not the hash of its proposal"
    return None


def _approval_problem(state: State, e: ev.Approved | ev.Rejected, crypto: Crypto) -> str | None:
    pending = state.proposal
    if pending is None:
        return "no proposal is pending"
    if e.proposal_hash != pending.hash:
        return f"it names proposal {e.proposal_hash[:16]}, the pending one is {pending.hash[:16]}"
    if isinstance(e, ev.Approved) and e.autonomous:
        if not state.autonomy or state.autonomy_grant is None:
            return "an autonomous approval while autonomy is off"
        return None  # the grant was verified when it was applied
    action = "approve" if isinstance(e, ev.Approved) else "reject"
    message = proposal_message(state, action, e.checkpoint_seq, e.checkpoint_hash)
    what = f"{action} of proposal {pending.hash[:16]}"
    return _signed(state, crypto, e.key_id, e.signature, message, what, e.checkpoint_seq, e.checkpoint_hash)


def _shadow_verdict_problem(state: State, e: ev.ShadowCompleted) -> str | None:
    """The verdict must be due (``reactions`` says when), about the shadow running, on
    the comparisons recorded, and follow from them and the thresholds it names."""
    shadow = state.shadow
    if shadow is None or CompleteShadow(generation=e.generation) not in reactions(state):
        return f"no verdict on the shadow of {e.generation} is due"
    if (e.samples, e.scored, e.judged) != (shadow.samples, shadow.scored, shadow.judged):
        return f"it counts {e.samples} comparisons, the ledger holds {shadow.samples}"
    parity = shadow.parity or 0.0
    low = parity < e.threshold or (
        shadow.quality is not None and e.quality_threshold > 0 and shadow.quality < e.quality_threshold
    )
    if e.outcome == "passed" and (low or shadow.samples == 0):
        return f"a pass on {shadow.samples} comparisons at parity {parity:.3f} (threshold {e.threshold:g})"
    if e.outcome == "failed" and not low:
        return f"a failure at parity {parity:.3f} that meets its threshold {e.threshold:g}"
    return None


def _burn_in_verdict_problem(state: State, e: ev.BurnInPassed | ev.BurnInFailed) -> str | None:
    burn = state.burn_in
    if burn is None or CompleteBurnIn(generation=e.generation) not in reactions(state):
        return f"no verdict on the burn-in of {e.generation} is due"
    if (e.answers, e.errors, e.law_violations) != (burn.answers, burn.errors, burn.law_violations):
        return f"it counts {e.answers} answers, the ledger holds {burn.answers}"
    return None


def _rollback_problem(state: State, e: ev.RolledBack, crypto: Crypto) -> str | None:
    if e.from_generation != state.head:
        return f"it rolls back from {e.from_generation}, HEAD is {state.head}"
    if e.automatic:
        burn = state.burn_in
        if state.phase is not Phase.BURN_IN or burn is None or not burn.failed:
            return "an automatic rollback without a failed burn-in"
        if e.to_generation != burn.previous_head:
            return f"an automatic rollback may only return to {burn.previous_head}, the generation HEAD replaced"
        return None
    if e.to_generation not in state.promoted:
        return f"{e.to_generation} was never HEAD"
    if e.to_generation in state.revoked:
        return f"{e.to_generation} was rolled back by an earlier rollback (revoked)"
    message = rollback_message(state.ledger_id, e.from_generation, e.to_generation, e.checkpoint_seq, e.checkpoint_hash)
    what = f"rollback {e.from_generation} -> {e.to_generation}"
    return _signed(state, crypto, e.key_id, e.signature, message, what, e.checkpoint_seq, e.checkpoint_hash)


def _trust_problem(state: State, e: ev.KeyTrusted | ev.KeyRevoked, crypto: Crypto) -> str | None:
    if isinstance(e, ev.KeyTrusted):
        try:
            public = bytes.fromhex(e.public)
        except ValueError:
            return "its public key is not hex"
        if len(public) != 32 or crypto.key_id(public) != e.key_id:
            return f"key id {e.key_id[:16]} is not the id of its 32-byte public key"
        if state.phase is Phase.EMPTY and not e.signer:
            return None  # pinned with the workspace, before the genesis
        message = trust_message(state.ledger_id, "add", e.key_id, e.public, e.checkpoint_seq, e.checkpoint_hash)
        what = f"trust in key {e.key_id}"
    else:
        if e.key_id not in state.keys:
            return f"key {e.key_id[:16]} is not trusted"
        message = trust_message(state.ledger_id, "revoke", e.key_id, "", e.checkpoint_seq, e.checkpoint_hash)
        what = f"revocation of key {e.key_id}"
    return _signed(state, crypto, e.signer, e.signature, message, what, e.checkpoint_seq, e.checkpoint_hash)


def admit(state: State, event: ev.Event, crypto: Crypto) -> str | None:
    """None when ``event`` may be applied to ``state``, else why not (see the module doc)."""
    if not accepts(state.phase, event):
        return f"{ev.event_name(event)} is not allowed in phase {state.phase.value!r}"
    match event:
        case ev.Heartbeat(cycle=cycle):
            return None if cycle > state.cycle else f"cycle {cycle} does not follow cycle {state.cycle}"
        case ev.GateEvaluated():
            return _gates_problem(state, event)
        case ev.CandidatesRanked(ranking=ranking):
            expected = rank(state.window_candidates())
            return None if ranking == expected else f"the ranking is not the one its candidates make ({', '.join(expected)})"
        case ev.CandidateFrozen(candidate=cid, status=status):
            cand = state.candidates.get(cid)
            if cand is None:
                return None
            if cand.frozen:
                return f"{cid} is already frozen (an archive is recorded once)"
            if state.window is None or state.window.ranking is None:
                return "candidates are frozen after ranking"
            try:
                right = verdict(cand)
            except InvalidInput as exc:
                return str(exc)
            return None if status == right else f"it freezes {cid} as {status!r}, its verdict is {right!r}"
        case ev.Proposed():
            return _proposal_problem(state, event, crypto)
        case ev.Approved() | ev.Rejected():
            return _approval_problem(state, event, crypto)
        case ev.AutonomyChanged():
            if event.nonce != state.autonomy_changes:
                return f"nonce {event.nonce} is stale: the next autonomy change is nonce {state.autonomy_changes}"
            message = autonomy_message(state.ledger_id, event.enabled, event.nonce, event.checkpoint_seq, event.checkpoint_hash)
            what = f"autonomy {'on' if event.enabled else 'off'} at nonce {event.nonce}"
            return _signed(state, crypto, event.key_id, event.signature, message, what, event.checkpoint_seq, event.checkpoint_hash)
        case ev.KeyTrusted() | ev.KeyRevoked():
            return _trust_problem(state, event, crypto)
        case ev.ShadowStarted(generation=name):
            pending = state.proposal
            if pending is None or pending.approved_by is None or pending.proposal.candidate != name:
                return f"{name} is not the approved candidate"
            return None
        case ev.Promoted():
            pending, shadow = state.proposal, state.shadow
            if pending is None or pending.approved_by is None or event.proposal_hash != pending.hash:
                return "no verified approval of this proposal"
            if shadow is None or not shadow.passed or shadow.generation != event.generation:
                return f"the shadow of {event.generation} has not passed"
            if pending.proposal.candidate != event.generation or event.previous_head != state.head:
                return f"it promotes {event.generation} over {event.previous_head}, not the approved proposal"
            if pending.proposal.current_head != state.head:
                return f"HEAD moved to {state.head} since the proposal was made"
            return None
        case ev.ShadowCompleted():
            return _shadow_verdict_problem(state, event)
        case ev.BurnInPassed() | ev.BurnInFailed():
            return _burn_in_verdict_problem(state, event)
        case ev.ApprovalRefused(action="approve", proposal_hash=digest):
            pending = state.proposal
            if state.phase is Phase.APPROVED and pending is not None and pending.hash == digest:
                return "it would withdraw a verified approval (only a refused signature is recorded; this one verified)"
            return None
        case ev.RolledBack():
            return _rollback_problem(state, event, crypto)
    return None


def verified(crypto: Crypto, ledger_id: Callable[[], str]) -> Callable[[State, ev.Event], State]:
    """The fold step every acting process uses: ``admit``, then ``evolve``; a record refused
    (or one that cannot apply) is counted and flagged, and changes nothing else. ``ledger_id``
    reads the hash of record 0 when the fold reaches it."""
    from evo_core.evolve import evolve

    def step(state: State, event: ev.Event) -> State:
        if state.records == 0 and not state.ledger_id:
            state = replace(state, ledger_id=ledger_id())
        if type(event) is ev.Heartbeat and event.cycle > state.cycle:  # the hot path
            return evolve(state, event)
        problem = admit(state, event, crypto)
        if problem is None:
            try:
                return evolve(state, event)
            except CorruptHistory as exc:
                problem = str(exc)
        flag = Flag(seq=state.records, type=ev.event_name(event), reason=problem)
        return replace(state, records=state.records + 1, flagged=state.flagged + (flag,))

    return step
