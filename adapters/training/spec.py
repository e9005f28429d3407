"""What a training worker is given and what it hands back: plain msgspec values, so a spec can
cross a process boundary (``spawn``) as bytes and a result can be read back after a crash.

The orchestrator (``adapters.training.students``) builds one ``TrainSpec`` per candidate from the
core's ``CandidateSpawned`` event and the config; the worker (``adapters.training.trainer``)
trains, writes its outputs under ``out_dir`` and returns a ``TrainResult``, which becomes the
core command FinishTraining, BreachBudget or FailTraining.

Files a finished worker leaves in ``out_dir`` (what the freeze step archives):

    weights/             the candidate's weights: G(N) with the LoRA merged in (a HF folder:
                         config.json, model.safetensors, tokenizer.json, ...)
    model.gguf           the weights as llama.cpp serves them, and export.json: its blake3 and
                         its parity check against the torch model (a mismatch fails the run)
    adapter/             the LoRA adapter alone (peft)
    train_args.json      the hyper-parameters it trained with
    evo_manifest.json    the spec's evolution manifest (parents and their hashes, seed,
                         strategy, alpha/beta/temperature, budget, data counts and delta hash)
    training.json        training metrics: steps, loss start/final, walltime, tokens, peak memory
"""

from __future__ import annotations

from typing import Literal

import msgspec

from evo_core.values import BudgetLimits, BudgetUsed, Placement, TrainingStats


class Distill(msgspec.Struct, frozen=True, kw_only=True):
    """The loss weights (``adapters.training.loss``): on replay rows alpha * CE(labels) +
    beta * T^2 * KL(q || student_T), q from the teachers that know the row; on new rows
    (alpha + beta) * CE(labels)."""

    alpha: float
    beta: float
    temperature: float
    stabilizer_weight: float
    scope: Literal["known", "all"] = "known"  # which rows each teacher teaches (config distill.scope)


class Lora(msgspec.Struct, frozen=True, kw_only=True):
    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """The optimizer's recipe around the peak learning rate (``adapters.training.recipe``)."""

    warmup_steps: int = 30
    kind: Literal["cosine", "linear", "constant"] = "cosine"
    min_lr_ratio: float = 0.1
    max_grad_norm: float = 1.0  # 0: no clipping
    divergence_factor: float = 3.0


class TrainSpec(msgspec.Struct, frozen=True, kw_only=True):
    candidate: str
    window: int
    gen: int
    branch: str
    seed: int
    strategy: str
    parent: str  # G(N)'s generation name
    parent_dir: str  # G(N)'s HF folder: the student's initialisation and the primary teacher
    stabilizer: str | None  # G(N-1)'s generation name (None in the first window)
    stabilizer_dir: str | None
    cache_path: str  # the window's teacher cache (shared by every branch)
    example_ids: tuple[str, ...]  # this branch's examples: its sample of new data + replay
    new_count: int  # how many of example_ids are new conversations (the rest are replay)
    data_delta_hash: str  # blake3 of the window's new conversations
    out_dir: str
    budget: BudgetLimits
    distill: Distill
    lora: Lora
    steps: int
    batch_size: int
    learning_rate: float
    schedule: Schedule = msgspec.field(default_factory=lambda: Schedule())
    device: str = "cpu"
    threads: int = 1
    parent_hash: str = ""
    stabilizer_hash: str = ""
    # config [model], resolved by the orchestrator (adapters.training.precision): the frozen
    # base's dtype in memory (the LoRA and the optimizer stay float32) and the served GGUF's type
    dtype: str = "float32"
    gguf_type: str = "f32"
    gradient_checkpointing: bool = False  # recompute activations in backward (less memory)
    placement: Placement | None = None  # where it runs (the executor fills it in: local or Ray)


class TrainResult(msgspec.Struct, frozen=True, kw_only=True):
    candidate: str
    status: Literal["finished", "breached", "failed"]
    stats: TrainingStats
    budget_used: BudgetUsed
    resource: str = ""  # for "breached": which budget, its limit and the value used
    limit: float = 0.0
    used: float = 0.0
    reason: str = ""  # for "failed"
    walltime_s: float = 0.0
    placement: Placement | None = None  # the spec's, handed back to be recorded
