"""The folded state: everything the scheduler knows, derived only from the ledger.

The state is a tree of frozen msgspec Structs so that it can be snapshotted with msgspec and
compared by value. ``STATE_VERSION`` names its shape: a snapshot of another version is ignored
and the ledger is replayed instead (snapshots are only a cache).
"""

from __future__ import annotations

import enum

import msgspec

from evo_core.values import BudgetLimits, BudgetUsed, GateResult, Metrics, Proposal

STATE_VERSION = "evo-state/4"


class Phase(enum.Enum):
    EMPTY = "empty"  # no generation registered yet
    IDLE = "idle"  # HEAD serves; waiting for the next window
    WINDOW = "window"  # an evolution window: spawn, train, evaluate, rank, freeze, propose
    PROPOSED = "proposed"  # a proposal waits for the operator
    APPROVED = "approved"  # approved; the shadow phase has not started yet
    SHADOW = "shadow"  # the proposed generation answers mirrored TRIVIAL queries
    BURN_IN = "burn_in"  # cut over; watching live answers


class CandidateStatus(enum.Enum):
    SPAWNED = "spawned"
    TRAINING = "training"
    TRAINED = "trained"
    FAILED = "failed"  # budget breach or crash: hard-failed, still frozen later
    EVALUATED = "evaluated"


class Candidate(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    window: int
    gen: int
    branch: str
    seed: int
    strategy: str
    parent: str
    stabilizer: str | None
    budget: BudgetLimits
    status: CandidateStatus = CandidateStatus.SPAWNED
    attempts: int = 0
    failure: str | None = None
    budget_used: BudgetUsed | None = None
    metrics: Metrics | None = None
    gates: tuple[GateResult, ...] = ()
    passed: bool = False
    score: float | None = None
    frozen: bool = False
    verdict: str = ""
    archive: str = ""
    archive_hash: str = ""
    model_hash: str = ""
    manifest_hash: str = ""


class Window(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    cycle: int
    heartbeat_cycle: int
    period: int
    gen: int
    head: str
    parent: str | None
    since_cycle: int = 0  # the previous window's cycle: new data is (since_cycle, cycle]
    candidates: tuple[str, ...] = ()
    baseline: Metrics | None = None
    baseline_score: float | None = None
    ranking: tuple[str, ...] | None = None
    outcome: str = ""  # "" while open; "proposed" or the no-promotion reason


class Generation(msgspec.Struct, frozen=True, kw_only=True):
    """A generation that can be served: the genesis, or a proposed candidate. ``model_hash`` is
    the blake3 of its ``model.gguf`` and ``archive_hash`` of its archive, as recorded when it was
    registered or frozen: what the router checks the bytes against before it loads them."""

    name: str
    gen: int
    parent: str | None
    window: int | None = None
    promoted: bool = False
    archive: str = ""
    archive_hash: str = ""
    model_hash: str = ""


class PendingProposal(msgspec.Struct, frozen=True, kw_only=True):
    proposal: Proposal
    hash: str
    approved_by: str | None = None
    approval_signature: str = ""
    approval_key_id: str = ""
    approval_autonomous: bool = False


class Shadow(msgspec.Struct, frozen=True, kw_only=True):
    generation: str
    start_cycle: int
    until_cycle: int
    traffic_percent: float
    samples: int = 0
    exact: int = 0
    similarity_sum: float = 0.0
    scored: int = 0  # samples whose answer HEAD scored (``ShadowCompared.logprob``)
    judged: int = 0  # scored answers to queries HEAD knows (``plausible`` not None)
    plausible: int = 0  # judged answers at or above the floor
    logprob_sum: float = 0.0  # over the judged answers
    passed: bool = False  # a ShadowCompleted "passed" was recorded: the cutover may follow

    @property
    def parity(self) -> float | None:
        """The mean similarity of the shadow's answers to HEAD's."""
        return self.similarity_sum / self.samples if self.samples else None

    @property
    def quality(self) -> float | None:
        """The share of judged answers that HEAD found plausible."""
        return self.plausible / self.judged if self.judged else None

    @property
    def logprob(self) -> float | None:
        """The mean log-likelihood per token under HEAD of the judged answers."""
        return self.logprob_sum / self.judged if self.judged else None


class BurnIn(msgspec.Struct, frozen=True, kw_only=True):
    generation: str
    previous_head: str
    start_cycle: int
    until_cycle: int
    answers: int = 0
    errors: int = 0
    law_violations: int = 0
    latency_samples: int = 0
    latency_ratio_sum: float = 0.0
    scored: int = 0  # answers the old HEAD scored (``AnswerObserved.logprob``)
    judged: int = 0  # scored answers to queries the old HEAD knows (``plausible`` not None)
    plausible: int = 0  # judged answers at or above the floor
    logprob_sum: float = 0.0  # over the judged answers
    failed: bool = False  # a BurnInFailed was recorded: the automatic rollback may follow

    @property
    def latency_ratio(self) -> float | None:
        """The mean latency of the new HEAD over the old HEAD's, on the same prompts."""
        return self.latency_ratio_sum / self.latency_samples if self.latency_samples else None

    @property
    def quality(self) -> float | None:
        """The share of judged answers that the old HEAD found plausible."""
        return self.plausible / self.judged if self.judged else None

    @property
    def logprob(self) -> float | None:
        """The mean log-likelihood per token under the old HEAD of the judged answers."""
        return self.logprob_sum / self.judged if self.judged else None


class AutonomyGrant(msgspec.Struct, frozen=True, kw_only=True):
    """The latest signed autonomy change, kept so the runner can verify it before using it."""

    enabled: bool
    operator: str
    key_id: str
    signature: str
    nonce: int


class Flag(msgspec.Struct, frozen=True, kw_only=True):
    """A record the verified fold did not apply: one the state machine could not have produced,
    or whose authority does not verify (``evo_core.authority``). It changes nothing but this list."""

    seq: int
    type: str
    reason: str


class TrustedKey(msgspec.Struct, frozen=True, kw_only=True):
    """An operator key the ledger trusts: pinned when the workspace was created, or added by a
    record signed with a key trusted then."""

    key_id: str
    public: str  # 64 hex: the raw ed25519 public key
    comment: str = ""
    since: int = 0  # the seq of the record that trusted it


class State(msgspec.Struct, frozen=True, kw_only=True):
    phase: Phase = Phase.EMPTY
    cycle: int = 0
    last_window_cycle: int = 0  # the latest period multiple that opened or skipped a window
    windows: int = 0  # windows opened so far
    head: str | None = None
    genesis: str | None = None
    genesis_source: str = ""  # how the genesis was made: "demo" (the demo world's laws apply), "hf", ...
    promoted: tuple[str, ...] = ()  # every generation that was ever HEAD by promotion, in order
    generations: dict[str, Generation] = {}
    candidates: dict[str, Candidate] = {}
    window: Window | None = None  # the current (or last) window
    proposal: PendingProposal | None = None
    shadow: Shadow | None = None
    burn_in: BurnIn | None = None
    autonomy: bool = False  # the operator's signed grant: the scheduler approves for itself
    autonomy_changes: int = 0  # AutonomyChanged events so far: the next one's nonce
    autonomy_grant: AutonomyGrant | None = None  # the latest AutonomyChanged, for re-verification
    # the verified fold (``evo_core.authority``): where it is, what it trusts, what it refused
    records: int = 0  # records folded: the next record's seq
    last_signed: int = -1  # the seq of the last operator-signed record: every signature must have seen it
    ledger_id: str = ""  # the hash of record 0: what every operator signature is bound to
    keys: dict[str, TrustedKey] = {}  # the operator keys trusted now, by key id
    pinned_keys: tuple[str, ...] = ()  # key ids pinned with the workspace (before the genesis)
    revoked_keys: tuple[str, ...] = ()  # key ids once trusted, now revoked
    revoked: tuple[str, ...] = ()  # generations an operator's (or the burn-in's) rollback took off HEAD
    flagged: tuple[Flag, ...] = ()  # records not applied, and why

    @property
    def parent(self) -> str | None:
        """GEN_HEAD-PARENT: the generation HEAD was distilled from (G(N-1))."""
        if self.head is None:
            return None
        return self.generations[self.head].parent

    @property
    def busy(self) -> bool:
        """True while an evolution is in progress (from window open to its final outcome)."""
        return self.phase not in (Phase.EMPTY, Phase.IDLE)

    def window_candidates(self) -> list[Candidate]:
        if self.window is None:
            return []
        return [self.candidates[c] for c in self.window.candidates]
