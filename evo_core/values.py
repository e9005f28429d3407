"""The values that events carry: metrics, gate verdicts, budgets, training stats, the promotion
proposal. None is an event or a ledger record on its own; each is encoded inside the event that
carries it (``evo_core.events``), so the ledger rules hold for them too: a new field gets a
default, a field never changes type.

They are untagged structs: the ledger spells a value by its fields alone, never by its class
name or this module's.
"""

import msgspec


class Value(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    """A value carried inside events (never a ledger record on its own)."""


class Metrics(Value, frozen=True):
    """The four probe results of the spec (step 4, EVAL), and the per-item evidence the gates
    bound them with (``evo_core.gates``). ``recall_outcomes`` / ``generalize_outcomes`` hold
    one ``'1'`` (right) or ``'0'`` (wrong) per probe item, in the probe set's item order (a
    recall item is a distinct fact, right when every training phrasing of it is), so HEAD's and
    a candidate's strings pair item by item; ``tone_drifts`` is the drift of each tone prompt,
    whose mean is ``tone_drift``. Empty: not recorded (records written before them)."""

    recall: float
    generalize: float
    tone_drift: float
    law_violations: int
    recall_outcomes: str = ""
    generalize_outcomes: str = ""
    tone_drifts: tuple[float, ...] = ()


class BudgetUsed(Value, frozen=True):
    """What a candidate consumed (the spec's ``budget_used``)."""

    steps: int = 0
    walltime_minutes: float = 0.0
    gpu_memory_gb: float = 0.0
    tokens_processed: int = 0
    disk_gb: float = 0.0


class BudgetLimits(Value, frozen=True):
    """The hard budget a candidate trained under (frozen into its spawn event)."""

    max_steps: int
    max_walltime_minutes: float
    max_gpu_memory_gb: float
    max_tokens_processed: int
    max_disk_gb: float


class Placement(Value, frozen=True):
    """Where a candidate trained: the executor (``"local"``: a process of the runner's machine;
    ``"ray"``: a Ray actor), the node (hostname; on Ray the node's id), its address, and the
    resources it was given (CPUs, GPUs, memory in GiB; 0: none reserved)."""

    executor: str
    node: str
    address: str = ""
    cpus: float = 0.0
    gpus: float = 0.0
    memory_gb: float = 0.0


class TrainingStats(Value, frozen=True):
    steps: int = 0
    loss_start: float = 0.0
    loss_final: float = 0.0


class GateResult(Value, frozen=True):
    """One gate: its verdict, the candidate's measured value, the threshold it met or missed,
    and the margin (positive = passed with room to spare, negative = failed by that much).

    ``method`` says what was compared with ``threshold`` (``evo_core.gates``):

    - ``""`` (records before bounds, or metrics without per-item outcomes): ``value`` itself;
      for recall / generalize ``threshold`` is HEAD's value -epsilon / +delta;
    - ``"tango-paired"`` (recall, generalize): ``bound``, a one-sided bound at ``confidence`` on
      the paired difference against HEAD over the same ``n_items`` items, of which the
      candidate got ``wins`` right that HEAD got wrong and ``losses`` the other way round;
      generalize: the lower bound of candidate - HEAD, ``threshold`` = delta; recall: the upper
      bound of HEAD - candidate, ``threshold`` = epsilon;
    - ``"mean"`` (tone): ``value`` is the mean drift over ``n_items`` prompts."""

    name: str
    passed: bool
    value: float
    threshold: float
    margin: float
    method: str = ""
    bound: float | None = None
    confidence: float | None = None
    n_items: int = 0
    wins: int = 0
    losses: int = 0


class Proposal(Value, frozen=True):
    """The promotion proposal (spec step 7). Its blake3 over ``encode_value(proposal)`` is the
    proposal hash an approval must name."""

    window: int
    candidate: str
    current_head: str
    reason: str
    score: float
    head_score: float
    improvement: float
    metrics: Metrics
    gates: tuple[GateResult, ...]
    model_hash: str
    manifest_hash: str
