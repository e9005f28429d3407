"""What a training worker is given and what it hands back: plain msgspec values, so a spec can
cross a process boundary (``spawn``) as bytes and a result can be read back after a crash.

The orchestrator (``adapters.training.window``) builds one ``TrainSpec`` per candidate from the
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

from evo_core.events import BudgetLimits, BudgetUsed, TrainingStats


class Distill(msgspec.Struct, frozen=True, kw_only=True):
    """The loss: alpha * CE(labels) + beta * T^2 * KL(q || student_T) with
    q = (1 - w) * softmax(G(N)/T) + w * softmax(G(N-1)/T)."""

    alpha: float
    beta: float
    temperature: float
    stabilizer_weight: float


class Lora(msgspec.Struct, frozen=True, kw_only=True):
    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]


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
    device: str = "cpu"
    threads: int = 1
    parent_hash: str = ""
    stabilizer_hash: str = ""


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
