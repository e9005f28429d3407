"""What ``evo explain`` answers, as values: an ``Explanation`` of one candidate or genesis (its
spawn, training, gates, rank, archive and rollout) and the parts it is made of.
``projections.explain`` builds it from the records; ``projections.explain_text`` words it."""

from __future__ import annotations

import msgspec

from evo_core.values import BudgetLimits, BudgetUsed, GateResult, Metrics, Placement, TrainingStats


class BudgetBreach(msgspec.Struct, frozen=True, kw_only=True):
    resource: str
    limit: float
    used: float
    over: float  # used - limit
    unit: str


class FrozenArchive(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    status: str  # STATUS.txt
    archive: str
    archive_hash: str
    model_hash: str
    manifest_hash: str


class Step(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    cycle: int
    type: str
    summary: str


class Explanation(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str  # "candidate" or "genesis"
    why: str
    seq: int  # its spawn or registration record
    cycle: int
    gen: int
    head_now: bool  # GEN_HEAD at the end of the records
    # genesis
    source: str = ""
    model_hash: str = ""
    archive_hash: str = ""
    archive: str = ""
    # candidate: where it came from
    window: int | None = None
    window_cycle: int | None = None
    head_at_open: str | None = None
    branch: str = ""
    strategy: str = ""
    seed: int | None = None
    parent: str | None = None  # G(N)
    stabilizer: str | None = None  # G(N-1)
    budget: BudgetLimits | None = None
    # training
    attempts: int = 0
    training: TrainingStats | None = None
    training_failure: str | None = None
    breach: BudgetBreach | None = None
    budget_used: BudgetUsed | None = None
    placement: Placement | None = None  # where it trained (the outcome event's)
    # evaluation
    metrics: Metrics | None = None
    gates: tuple[GateResult, ...] = ()
    passed: bool | None = None
    score: float | None = None
    baseline_generation: str | None = None
    baseline_metrics: Metrics | None = None
    baseline_score: float | None = None
    improvement: float | None = None  # score - HEAD's score
    rank: int | None = None
    ranked: int = 0  # how many candidates the window ranked
    ranking: tuple[str, ...] = ()
    frozen: FrozenArchive | None = None
    verdict: str = ""
    window_outcome: str = ""  # "proposed <name>" or the no-promotion reason
    # the rollout
    proposal_hash: str = ""
    proposed: bool = False
    approved: bool = False
    rejected: bool = False
    shadowed: bool = False
    promoted: bool = False
    rolled_back: bool = False
    taught: tuple[int, ...] = ()  # windows bred from it while it was HEAD
    rollout: tuple[Step, ...] = ()
