"""The events: everything that ever happened to the scheduler, in the past tense.

Each event is a frozen, keyword-only msgspec Struct on one tagged base; its tag (the
``"type"`` key in the ledger) is the class name. The ledger is forever, so:

- a new field always gets a default (old records still decode);
- a field never changes type, and a tag is never reused or renamed;
- an unknown tag in a ledger is an error, never silently skipped.

The values the events carry (metrics, gate verdicts, budgets, the proposal) live in
``evo_core.values``.

``decode_event`` / ``encode_event`` are the one codec; the ledger embeds the encoded event
as the ``"event"`` value of a record.
"""

from typing import Literal, Union

import msgspec

from evo_core.values import BudgetLimits, BudgetUsed, GateResult, Metrics, Placement, Proposal, TrainingStats, Value


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Base of every ledger event."""


class Heartbeat(Event, frozen=True):
    """The agent lived one more cycle. The only clock the scheduler knows."""

    cycle: int


class GenerationRegistered(Event, frozen=True):
    """A genesis generation (G000) was registered as HEAD: the base model everything descends from."""

    generation: str
    gen: int = 0
    source: str = ""
    model_hash: str = ""
    archive_hash: str = ""
    archive: str = ""


class WindowOpened(Event, frozen=True):
    """An evolution window opened at ``cycle`` (a multiple of ``period``), reached or crossed by
    the heartbeat at ``heartbeat_cycle``. It will breed generation ``gen`` from ``head`` on the
    conversations of cycles (``since_cycle``, ``cycle``]: those since the previous window."""

    window: int
    cycle: int
    heartbeat_cycle: int
    period: int
    gen: int
    head: str
    parent: str | None = None
    since_cycle: int = 0


class WindowSkipped(Event, frozen=True):
    """``count`` window multiples from ``first_cycle`` to ``last_cycle`` did not open a window."""

    first_cycle: int
    last_cycle: int
    count: int
    heartbeat_cycle: int
    reason: str


class CandidateSpawned(Event, frozen=True):
    """A student was planned: initialised from ``parent`` (G(N)), with ``stabilizer`` (G(N-1))."""

    window: int
    candidate: str
    gen: int
    branch: str
    seed: int
    strategy: str
    parent: str
    stabilizer: str | None
    budget: BudgetLimits


class TrainingStarted(Event, frozen=True):
    candidate: str
    attempt: int = 1


class TrainingFinished(Event, frozen=True):
    candidate: str
    stats: TrainingStats
    budget_used: BudgetUsed
    placement: Placement | None = None  # where it trained (None: records before placements)


class TrainingFailed(Event, frozen=True):
    """Training crashed (worker died, exception): the candidate is hard-failed."""

    candidate: str
    reason: str
    budget_used: BudgetUsed = BudgetUsed()
    placement: Placement | None = None  # where it ran, when it got that far


class BudgetBreached(Event, frozen=True):
    """The first budget breach stopped training: the candidate is hard-failed."""

    candidate: str
    resource: str
    limit: float
    used: float
    budget_used: BudgetUsed
    placement: Placement | None = None


class BaselineEvaluated(Event, frozen=True):
    """HEAD's own metrics on this window's probes: what the gates compare against."""

    window: int
    generation: str
    metrics: Metrics
    score: float


class GateEvaluated(Event, frozen=True):
    """A trained candidate's metrics and the verdict of every gate (spec: five gates)."""

    candidate: str
    metrics: Metrics
    gates: tuple[GateResult, ...]
    passed: bool
    score: float


class CandidatesRanked(Event, frozen=True):
    """The window's candidates, best first (passing ones by score, then failing ones)."""

    window: int
    ranking: tuple[str, ...]


class CandidateFrozen(Event, frozen=True):
    """A candidate's artifacts were archived, immutable, under ``archive``."""

    candidate: str
    status: str
    archive: str
    archive_hash: str
    model_hash: str = ""
    manifest_hash: str = ""


class Proposed(Event, frozen=True):
    proposal: Proposal
    proposal_hash: str


class NoPromotion(Event, frozen=True):
    window: int
    reason: str


class Approved(Event, frozen=True):
    """The pending proposal was approved: by an operator, whose ed25519 ``signature`` of the
    proposal recomputed from the ledger and of the checkpoint the operator saw
    (``evo_core.authority``) verifies with the key ``key_id`` the ledger trusts; or, with
    ``autonomous``, by the scheduler itself under the operator's signed autonomy grant."""

    proposal_hash: str
    operator: str
    signature: str = ""
    key_id: str = ""
    autonomous: bool = False
    checkpoint_seq: int = -1  # the ledger checkpoint (seq, hash) the operator signed with it
    checkpoint_hash: str = ""


class Rejected(Event, frozen=True):
    proposal_hash: str
    operator: str
    reason: str
    signature: str = ""
    key_id: str = ""
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""


class ApprovalRefused(Event, frozen=True):
    """An approval, rejection or autonomy change was refused (unsigned, forged, an untrusted
    key, a stale proposal): recorded for auditors, it changes nothing, except that an approval
    refused after it was appended (by the runner, before acting on it) is withdrawn."""

    action: Literal["approve", "reject", "autonomy", "rollback", "trust"]
    proposal_hash: str
    operator: str
    key_id: str
    reason: str


class AutonomyChanged(Event, frozen=True):
    """The operator switched the autonomy bit: while on, the scheduler approves its own
    proposals. ``signature`` signs (enabled, nonce); ``nonce`` is the count of earlier changes,
    so an old signed change cannot be replayed."""

    enabled: bool
    operator: str
    key_id: str
    signature: str
    nonce: int
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""


class KeyTrusted(Event, frozen=True):
    """The ledger trusts an operator key (``public``: its raw ed25519 key, 64 hex). Pinned when
    the workspace was created (unsigned, before the genesis: part of what the ledger id hashes),
    or added later by a record ``signer`` signed, a key the ledger trusted then."""

    key_id: str
    public: str
    operator: str
    comment: str = ""
    signer: str = ""
    signature: str = ""
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""


class KeyRevoked(Event, frozen=True):
    """The ledger stops trusting ``key_id`` from here on (signatures it made before still count
    for the history they signed); signed by ``signer``, a key trusted then (it may be itself)."""

    key_id: str
    operator: str
    reason: str
    signer: str
    signature: str
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""


class ShadowStarted(Event, frozen=True):
    generation: str
    start_cycle: int
    until_cycle: int
    traffic_percent: float


class ShadowCompared(Event, frozen=True):
    """One mirrored TRIVIAL query: HEAD's and the shadow's answers compared (never returned).
    HEAD's mean log-likelihoods per token (nats, ``adapters.serving.quality``) of the query,
    ``prompt_logprob``, and of the shadow's answer, ``logprob``; ``plausible``: None when the
    answer was not judged (not scored, or a query HEAD does not know: under the prompt floor in
    force when recorded), else whether ``logprob`` reached the logprob floor."""

    generation: str
    cycle: int
    exact: bool
    similarity: float
    query_id: str = ""
    logprob: float | None = None
    prompt_logprob: float | None = None
    plausible: bool | None = None


Outcome = Literal["passed", "failed", "inconclusive"]


class ShadowCompleted(Event, frozen=True):
    """The shadow analysis (Argo Rollouts style): passed, failed, or inconclusive (too few
    samples: the shadow runs on until ``until_cycle``)."""

    generation: str
    outcome: Outcome
    samples: int
    parity: float
    threshold: float
    until_cycle: int = 0
    scored: int = 0  # samples whose answer HEAD scored
    judged: int = 0  # scored answers to queries HEAD knows
    quality: float | None = None  # the share of judged answers that were plausible (None: none judged)
    quality_threshold: float = 0.0
    logprob: float | None = None  # the mean log-likelihood of the judged answers
    reason: str = ""  # why it failed or is inconclusive


class Promoted(Event, frozen=True):
    """The cutover: GEN_HEAD now points at ``generation``; burn-in runs until ``burn_in_until``."""

    generation: str
    previous_head: str
    proposal_hash: str
    cycle: int
    burn_in_until: int


class AnswerObserved(Event, frozen=True):
    """One live answer of the new HEAD during burn-in: an error (exception, empty answer), a
    law violation, its latency over the old HEAD's on the same prompt when measured, and when
    scored the old HEAD's mean log-likelihoods per token of the query and of the answer, with
    the verdict (``plausible``, None when not judged) as in ``ShadowCompared``."""

    generation: str
    cycle: int
    error: bool
    law_violation: bool
    latency_ratio: float | None = None
    query_id: str = ""
    logprob: float | None = None
    prompt_logprob: float | None = None
    plausible: bool | None = None


class BurnInExtended(Event, frozen=True):
    """Too few live answers to judge the burn-in: it runs on until ``until_cycle``."""

    generation: str
    answers: int
    min_answers: int
    until_cycle: int


class BurnInPassed(Event, frozen=True):
    """Burn-in held: "GEN_HEAD advanced"."""

    generation: str
    answers: int = 0
    errors: int = 0
    law_violations: int = 0
    latency_ratio: float | None = None  # mean over the answers measured against the old HEAD
    scored: int = 0  # answers the old HEAD scored
    judged: int = 0  # scored answers to queries the old HEAD knows
    quality: float | None = None  # the share of judged answers that were plausible (None: none judged)
    logprob: float | None = None  # the mean log-likelihood of the judged answers


class BurnInFailed(Event, frozen=True):
    generation: str
    reason: str
    answers: int = 0
    errors: int = 0
    law_violations: int = 0
    latency_ratio: float | None = None
    scored: int = 0
    judged: int = 0
    quality: float | None = None
    logprob: float | None = None


class RolledBack(Event, frozen=True):
    """GEN_HEAD was pointed back at ``to_generation``: by the operator's signed command, or
    ``automatic``ally after a failed burn-in (then only to the generation HEAD replaced). The
    generation it leaves is revoked: no rollback returns to it."""

    from_generation: str
    to_generation: str
    reason: str
    operator: str = ""
    automatic: bool = False
    signature: str = ""
    key_id: str = ""
    checkpoint_seq: int = -1
    checkpoint_hash: str = ""


class WorkInterrupted(Event, frozen=True):
    """The runner was stopped (SIGINT/SIGTERM) while doing ``actions``: they are still due and
    run again when it starts (a candidate interrupted in training trains again from scratch)."""

    actions: tuple[str, ...]
    signal: str
    detail: str = ""


AnyEvent = Union[
    Heartbeat,
    GenerationRegistered,
    WindowOpened,
    WindowSkipped,
    CandidateSpawned,
    TrainingStarted,
    TrainingFinished,
    TrainingFailed,
    BudgetBreached,
    BaselineEvaluated,
    GateEvaluated,
    CandidatesRanked,
    CandidateFrozen,
    Proposed,
    NoPromotion,
    Approved,
    Rejected,
    ApprovalRefused,
    AutonomyChanged,
    KeyTrusted,
    KeyRevoked,
    ShadowStarted,
    ShadowCompared,
    ShadowCompleted,
    Promoted,
    AnswerObserved,
    BurnInExtended,
    BurnInPassed,
    BurnInFailed,
    RolledBack,
    WorkInterrupted,
]

EVENT_TYPES: dict[str, type[Event]] = {cls.__name__: cls for cls in AnyEvent.__args__}  # type: ignore[attr-defined]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode_event(event: Event) -> bytes:
    """Compact JSON of one event, tag first."""
    return _encoder.encode(event)


def decode_event(data: bytes | str) -> Event:
    """Decode one event; raises ``msgspec.ValidationError`` for an unknown tag or a bad field."""
    event: Event = _decoder.decode(data)
    return event


def encode_value(value: Value) -> bytes:
    """Canonical bytes of a value (what a proposal hash is computed over)."""
    return _encoder.encode(value)


def event_name(event: Event) -> str:
    return type(event).__name__
