"""Commands: what the agent, the operator and the runner ask for, in the imperative.

Commands are never stored (only the events ``decide`` returns are); they are frozen msgspec
Structs because those cost microseconds to define (dataclasses cost milliseconds, and the
heartbeat pays every import). Each carries the configuration values it needs, which keeps ``decide`` pure and
lets a heartbeat run without importing the config models (pydantic costs ~70 ms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from evo_core.values import BudgetUsed, Metrics, Placement, Proposal, TrainingStats

if TYPE_CHECKING:
    from evo_core.config import EvoConfig


class Command(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every command."""


# ---------------------------------------------------------------- the agent


class Beat(Command, frozen=True, kw_only=True):
    """Append ``count`` heartbeats: cycles ``cycle``.. (default: the next one)."""

    period: int
    cycle: int | None = None
    count: int = 1


# ---------------------------------------------------------------- set-up


class RegisterGenesis(Command, frozen=True, kw_only=True):
    generation: str
    source: str = ""
    model_hash: str = ""
    archive_hash: str = ""
    archive: str = ""


# ---------------------------------------------------------------- the runner


class SpawnCandidates(Command, frozen=True, kw_only=True):
    config: EvoConfig


class StartTraining(Command, frozen=True, kw_only=True):
    candidate: str


class FinishTraining(Command, frozen=True, kw_only=True):
    candidate: str
    stats: TrainingStats
    budget_used: BudgetUsed
    placement: Placement | None = None


class FailTraining(Command, frozen=True, kw_only=True):
    candidate: str
    reason: str
    budget_used: BudgetUsed = BudgetUsed()
    placement: Placement | None = None


class BreachBudget(Command, frozen=True, kw_only=True):
    candidate: str
    resource: str
    limit: float
    used: float
    budget_used: BudgetUsed
    placement: Placement | None = None


class RecordBaseline(Command, frozen=True, kw_only=True):
    metrics: Metrics
    config: EvoConfig


class RecordEvaluation(Command, frozen=True, kw_only=True):
    candidate: str
    metrics: Metrics
    config: EvoConfig


class Rank(Command, frozen=True, kw_only=True):
    pass


class Freeze(Command, frozen=True, kw_only=True):
    candidate: str
    archive: str
    archive_hash: str
    model_hash: str = ""
    manifest_hash: str = ""


class Propose(Command, frozen=True, kw_only=True):
    """Conclude the window: ``proposal`` must equal ``window.draft_proposal(state)`` (None when
    nothing qualifies, which concludes with NoPromotion); ``proposal_hash`` is its blake3."""

    proposal: Proposal | None
    proposal_hash: str = ""


class StartShadow(Command, frozen=True, kw_only=True):
    config: EvoConfig


class RecordShadow(Command, frozen=True, kw_only=True):
    """One mirrored comparison, and HEAD's scores (None: not scored): ``prompt_logprob`` of the
    query, ``logprob`` of the shadow's answer (mean log-likelihoods per token). They are judged
    against ``prompt_floor`` and ``logprob_floor`` (``[shadow]``, required with a score)."""

    exact: bool
    similarity: float
    query_id: str = ""
    logprob: float | None = None
    prompt_logprob: float | None = None
    logprob_floor: float | None = None
    prompt_floor: float | None = None


class CompleteShadow(Command, frozen=True, kw_only=True):
    config: EvoConfig


class RecordInterruption(Command, frozen=True, kw_only=True):
    """The runner stops on a signal: record what it was doing (still due after a restart)."""

    actions: tuple[str, ...]
    signal: str
    detail: str = ""


class RecordAnswer(Command, frozen=True, kw_only=True):
    """One live answer of the new HEAD during burn-in (the router observes it)."""

    error: bool
    law_violation: bool
    latency_ratio: float | None = None
    query_id: str = ""
    logprob: float | None = None  # the old HEAD's mean log-likelihood per token of the answer
    prompt_logprob: float | None = None  # ... of the query
    logprob_floor: float | None = None  # [burn_in], required with a score
    prompt_floor: float | None = None


class CompleteBurnIn(Command, frozen=True, kw_only=True):
    """Judge the burn-in on the answers the ledger holds (``AnswerObserved``)."""

    config: EvoConfig


# ---------------------------------------------------------------- the operator


class Approve(Command, frozen=True, kw_only=True):
    """Signed by the operator (the adapter verifies the signature before it gets here), or
    ``autonomous`` under a signed autonomy grant."""

    operator: str
    proposal_hash: str | None = None  # None: the pending one
    signature: str = ""
    key_id: str = ""
    autonomous: bool = False
    checkpoint_seq: int = -1  # the ledger checkpoint the operator saw and signed
    checkpoint_hash: str = ""


class Reject(Command, frozen=True, kw_only=True):
    operator: str
    reason: str
    proposal_hash: str | None = None
    signature: str = ""
    key_id: str = ""
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""


class RefuseApproval(Command, frozen=True, kw_only=True):
    """Record that an approval, rejection or autonomy change was refused, and why."""

    action: str  # "approve", "reject" or "autonomy"
    operator: str
    reason: str
    proposal_hash: str = ""
    key_id: str = ""


class ChangeAutonomy(Command, frozen=True, kw_only=True):
    """The operator's signed switch of the autonomy bit; ``nonce`` = the changes so far."""

    enabled: bool
    operator: str
    key_id: str
    signature: str
    nonce: int
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""


class TrustKey(Command, frozen=True, kw_only=True):
    """Trust an operator key: pinned with the workspace (unsigned, before the genesis), or
    signed by ``signer``, a key the ledger trusts (``evo_core.authority.trust_message``)."""

    key_id: str
    public: str
    operator: str
    comment: str = ""
    signer: str = ""
    signature: str = ""
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""


class RevokeKey(Command, frozen=True, kw_only=True):
    """Stop trusting ``key_id``; signed by ``signer``, a key the ledger trusts."""

    key_id: str
    operator: str
    reason: str
    signer: str
    signature: str
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""


class Rollback(Command, frozen=True, kw_only=True):
    """The operator's rollback, signed like an approval (``evo_core.authority.rollback_message``
    names the generation left and the one returned to)."""

    operator: str
    to: str | None = None  # None: the previous promoted generation
    reason: str = "manual rollback"
    signature: str = ""
    key_id: str = ""
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""
