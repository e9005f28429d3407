"""Commands: what the agent, the operator and the runner ask for, in the imperative.

Commands are never stored (only the events ``decide`` returns are), so they are plain frozen
dataclasses. Each carries the configuration values it needs, which keeps ``decide`` pure and
lets a heartbeat run without importing the config models (pydantic costs ~70 ms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from evo_core.events import BudgetUsed, Metrics, Proposal, TrainingStats

if TYPE_CHECKING:
    from evo_core.config import EvoConfig


class Command:
    """Base of every command."""


# ---------------------------------------------------------------- the agent


@dataclass(frozen=True, kw_only=True)
class Beat(Command):
    """Append ``count`` heartbeats: cycles ``cycle``.. (default: the next one)."""

    period: int
    cycle: int | None = None
    count: int = 1


# ---------------------------------------------------------------- set-up


@dataclass(frozen=True, kw_only=True)
class RegisterGenesis(Command):
    generation: str
    source: str = ""
    model_hash: str = ""
    archive_hash: str = ""


# ---------------------------------------------------------------- the runner


@dataclass(frozen=True, kw_only=True)
class SpawnCandidates(Command):
    config: EvoConfig


@dataclass(frozen=True, kw_only=True)
class StartTraining(Command):
    candidate: str


@dataclass(frozen=True, kw_only=True)
class FinishTraining(Command):
    candidate: str
    stats: TrainingStats
    budget_used: BudgetUsed


@dataclass(frozen=True, kw_only=True)
class FailTraining(Command):
    candidate: str
    reason: str
    budget_used: BudgetUsed = BudgetUsed()


@dataclass(frozen=True, kw_only=True)
class BreachBudget(Command):
    candidate: str
    resource: str
    limit: float
    used: float
    budget_used: BudgetUsed


@dataclass(frozen=True, kw_only=True)
class RecordBaseline(Command):
    metrics: Metrics
    config: EvoConfig


@dataclass(frozen=True, kw_only=True)
class RecordEvaluation(Command):
    candidate: str
    metrics: Metrics
    config: EvoConfig


@dataclass(frozen=True, kw_only=True)
class Rank(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class Freeze(Command):
    candidate: str
    archive: str
    archive_hash: str
    model_hash: str = ""
    manifest_hash: str = ""


@dataclass(frozen=True, kw_only=True)
class Propose(Command):
    """Conclude the window: ``proposal`` must equal ``window.draft_proposal(state)`` (None when
    nothing qualifies, which concludes with NoPromotion); ``proposal_hash`` is its blake3."""

    proposal: Proposal | None
    proposal_hash: str = ""


@dataclass(frozen=True, kw_only=True)
class StartShadow(Command):
    config: EvoConfig


@dataclass(frozen=True, kw_only=True)
class RecordShadow(Command):
    exact: bool
    similarity: float
    query_id: str = ""


@dataclass(frozen=True, kw_only=True)
class CompleteShadow(Command):
    config: EvoConfig


@dataclass(frozen=True, kw_only=True)
class CompleteBurnIn(Command):
    answers: int
    errors: int
    law_violations: int
    latency_ratio: float | None
    config: EvoConfig


# ---------------------------------------------------------------- the operator


@dataclass(frozen=True, kw_only=True)
class Approve(Command):
    operator: str
    proposal_hash: str | None = None  # None: the pending one
    signature: str = ""
    key_id: str = ""


@dataclass(frozen=True, kw_only=True)
class Reject(Command):
    operator: str
    reason: str
    proposal_hash: str | None = None
    signature: str = ""
    key_id: str = ""


@dataclass(frozen=True, kw_only=True)
class Rollback(Command):
    operator: str
    to: str | None = None  # None: the previous promoted generation
    reason: str = "manual rollback"
