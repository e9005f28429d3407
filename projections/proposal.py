"""``models/PROMOTION_PROPOSAL.json``: the proposal waiting for the operator, in the spec's shape
(action, current_head, proposed_head, reason, improvement, metrics, gates, hashes) plus what an
operator needs to act on it: the proposal hash and the exact commands to approve or reject.

The document exists while a proposal is open: ``pending`` (waiting for the operator), then
``approved`` (shadow phase; no commands any more). Otherwise there is none.
"""

from __future__ import annotations

import msgspec

from evo_core.state import Phase, State
from evo_core.values import GateResult, Metrics

from projections.summary import short


class ProposalHashes(msgspec.Struct, frozen=True, kw_only=True):
    model: str
    manifest: str


class ProposalDocument(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    action: str  # always "PROMOTE" (the spec's shape)
    status: str  # "pending" or "approved"
    current_head: str
    proposed_head: str
    reason: str
    improvement: float
    score: float
    head_score: float
    metrics: Metrics
    gates: dict[str, bool]  # the spec's {gate: passed}
    gate_details: tuple[GateResult, ...]
    hashes: ProposalHashes
    proposal_hash: str
    window: int
    approved_by: str | None = None
    approve: str | None = None  # the command that approves it (while pending)
    reject: str | None = None
    timestamp: str | None = None  # when it was proposed (record time), if the caller knows


def approve_command(proposal_hash: str) -> str:
    return f"evo approve --proposal {short(proposal_hash)} --key OPERATOR_KEY"


def reject_command() -> str:
    return 'evo reject --reason "<why>" --key OPERATOR_KEY'


def proposal_document(state: State, *, timestamp: str | None = None) -> ProposalDocument | None:
    pending = state.proposal
    if pending is None or state.phase not in (Phase.PROPOSED, Phase.APPROVED, Phase.SHADOW):
        return None
    p = pending.proposal
    waiting = state.phase is Phase.PROPOSED
    return ProposalDocument(
        action="PROMOTE",
        status="pending" if waiting else "approved",
        current_head=p.current_head,
        proposed_head=p.candidate,
        reason=p.reason,
        improvement=p.improvement,
        score=p.score,
        head_score=p.head_score,
        metrics=p.metrics,
        gates={g.name: g.passed for g in p.gates},
        gate_details=p.gates,
        hashes=ProposalHashes(model=p.model_hash, manifest=p.manifest_hash),
        proposal_hash=pending.hash,
        window=p.window,
        approved_by=pending.approved_by,
        approve=approve_command(pending.hash) if waiting else None,
        reject=reject_command() if waiting else None,
        timestamp=timestamp,
    )


def render_proposal(document: ProposalDocument) -> str:
    """Pretty JSON (2-space indent), ending in a newline."""
    return msgspec.json.format(msgspec.json.encode(document), indent=2).decode() + "\n"
