"""One candidate's training run: G(N) + a fresh LoRA, distilled from the window's teacher cache
under its hard budget. ``train(spec)`` never raises: every outcome is a ``TrainResult``.

The run, in order:
1. seed everything from ``spec.seed`` (torch, a seeded shuffle of the example ids, deterministic
   algorithms where torch has them) and set ``torch.set_num_threads(spec.threads)``;
2. open the teacher cache and write ``train_args.json`` (a save: the disk budget is checked);
3. load G(N) from ``spec.parent_dir`` and wrap it with a fresh peft LoRA; AdamW on the LoRA
   parameters only (the base weights are frozen by peft and never handed to the optimizer),
   with ``spec.schedule``'s warm-up, decay and gradient clipping (``adapters.training.recipe``);
4. ``spec.steps`` optimizer steps of ``batch_size`` examples from the cache, walking the seeded
   shuffle of ``example_ids`` and reshuffling it (same generator) at the end of each pass; the
   loss is ``adapters.training.loss.distill_loss`` with ``spec.distill`` and the cache's record
   of which teachers know each example (w = 0 when the window has no stabilizer). The budget is
   checked before and after every step; the first breach stops the run; the divergence guard
   fails a run whose loss is not finite or climbs far above its best (nothing is exported);
5. on success: the adapter to ``adapter/``, the merged model (``adapters.models.merge``) and the
   parent's tokenizer to ``weights/``, then ``evo_manifest.json`` and ``training.json``; the disk
   budget is checked after saving (a breach there keeps the weights written, status "breached").
   A run breached or failed before that writes ``training.json`` and ``evo_manifest.json`` too
   (best effort: status, breach or reason) but no weights.
"""

from __future__ import annotations

import json
import os
import random
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec

from adapters.training.loss import LossParts, distill_loss
from adapters.training.spec import Distill, Lora, TrainResult, TrainSpec
from evo_core.values import BudgetUsed, TrainingStats

Progress = Callable[[dict[str, Any]], None]
METHOD = "teacher_student_distillation"
CURVE_POINTS = 100  # the loss curve keeps about this many points, whatever the run's length


def curve_every(planned_steps: int) -> int:
    """Record the loss every this many steps: every step up to CURVE_POINTS steps, then sparser."""
    return max(1, -(-planned_steps // CURVE_POINTS))


class _Run:
    """What a run has so far, so that a failure still reports it."""

    def __init__(self, spec: TrainSpec) -> None:
        self.spec = spec
        self.start = time.perf_counter()
        self.meter: Any = None
        self.steps = 0
        self.loss_start = 0.0
        self.loss_final = 0.0
        self.last: dict[str, float] = {}
        self.curve: list[tuple[int, float]] = []  # (step, loss): steps 1, 1 + every, ... and the last
        self.effective_w = spec.distill.stabilizer_weight if spec.stabilizer_dir else 0.0
        self.hashes: dict[str, str] = {}

    def stats(self) -> TrainingStats:
        return TrainingStats(steps=self.steps, loss_start=self.loss_start, loss_final=self.loss_final)

    def used(self) -> BudgetUsed:
        return self.meter.used() if self.meter is not None else BudgetUsed()

    def result(self, status: str, **extra: Any) -> TrainResult:
        return TrainResult(
            candidate=self.spec.candidate, status=status,  # type: ignore[arg-type]
            stats=self.stats(), budget_used=self.used(),
            walltime_s=time.perf_counter() - self.start, **extra,
        )


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def _seed(seed: int, threads: int, device: str) -> None:
    import torch

    if device.startswith("cuda"):
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(max(1, threads))
    random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def _batches(ids: tuple[str, ...], batch_size: int, seed: int) -> Iterator[list[str]]:
    rng = random.Random(seed)
    order = list(ids)
    rng.shuffle(order)
    pos = 0
    while True:
        batch: list[str] = []
        while len(batch) < batch_size:
            if pos == len(order):
                rng.shuffle(order)
                pos = 0
            batch.append(order[pos])
            pos += 1
        yield batch


def train_args(spec: TrainSpec, run: _Run, cache: Any) -> dict[str, Any]:
    import peft
    import torch
    import transformers

    from adapters.training.precision import compute_dtype

    return {
        "candidate": spec.candidate,
        "seed": spec.seed,
        "steps": spec.steps,
        "batch_size": spec.batch_size,
        "learning_rate": spec.learning_rate,
        "optimizer": "AdamW",
        "schedule": msgspec.to_builtins(spec.schedule),
        "lora": msgspec.to_builtins(spec.lora),
        "distill": msgspec.to_builtins(spec.distill),
        "stabilizer_weight_effective": run.effective_w,
        "data_strategy": spec.strategy,
        "examples": len(spec.example_ids),
        "teacher_cache": {
            "path": spec.cache_path, "top_k": cache.top_k, "vocab_size": cache.vocab_size,
            "max_seq_len": cache.index.get("max_seq_len"), "tokenizer": cache.index.get("tokenizer"),
        },
        "device": spec.device,
        "threads": spec.threads,
        "placement": msgspec.to_builtins(spec.placement) if spec.placement else None,
        "dtype": {
            "base": spec.dtype, "adapter": "float32", "autocast": spec.dtype if compute_dtype(spec.dtype) is not None else None,
            "gradient_checkpointing": spec.gradient_checkpointing,
        },
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
    }


def manifest(spec: TrainSpec, run: _Run) -> dict[str, Any]:
    d = spec.distill
    stabilizer = None
    if spec.stabilizer_dir:
        stabilizer = {"gen": spec.stabilizer, "path": spec.stabilizer_dir, "blake3": run.hashes.get("stabilizer", "")}
    return {
        "evolution_request": {
            "gen_id": spec.gen, "branch_id": spec.branch, "candidate": spec.candidate,
            "parent": spec.parent, "grandparent": spec.stabilizer, "window": spec.window,
        },
        "training_strategy": {
            "method": METHOD, "seed": spec.seed, "data_strategy": spec.strategy,
            "alpha": d.alpha, "beta": d.beta, "temperature": d.temperature,
            "stabilizer_weight": d.stabilizer_weight,
            "stabilizer_weight_effective": run.effective_w,
            "teachers_scope": d.scope,
        },
        "parents": {
            "primary_teacher": {"gen": spec.parent, "path": spec.parent_dir, "blake3": run.hashes.get("parent", "")},
            "stabilizer": stabilizer,
        },
        "budget": msgspec.to_builtins(spec.budget),
        "data": {
            "new_conversations": spec.new_count,
            "replay_samples": len(spec.example_ids) - spec.new_count,
            "total_examples": len(spec.example_ids),
            "data_delta_blake3": spec.data_delta_hash,
        },
    }


def training_json(run: _Run, status: str, breach: tuple[str, float, float] | None, reason: str = "") -> dict[str, Any]:
    used = run.used()
    seconds = time.perf_counter() - run.start
    return {
        "status": status,
        "steps": run.steps,
        "planned_steps": run.spec.steps,
        "loss_start": run.loss_start,
        "loss_final": run.loss_final,
        "ce_final": run.last.get("ce", 0.0),
        "kd_final": run.last.get("kd", 0.0),
        "loss_curve": _curve(run),
        "walltime_minutes": seconds / 60.0,
        "tokens_processed": used.tokens_processed,
        "tokens_per_second": used.tokens_processed / seconds if seconds > 0 else 0.0,
        "peak_memory_gb": used.gpu_memory_gb,
        "memory_kind": "cuda_max_allocated" if run.spec.device.startswith("cuda") else "cpu_peak_rss",
        "budget_used": msgspec.to_builtins(used),
        "breach": None if breach is None else {"resource": breach[0], "limit": breach[1], "used": breach[2]},
        "reason": reason,
    }


def _curve(run: _Run) -> list[tuple[int, float]]:
    """The recorded curve, ending at the last step taken (a run stopped early included)."""
    if run.steps and (not run.curve or run.curve[-1][0] < run.steps):
        return [*run.curve, (run.steps, round(run.loss_final, 5))]
    return run.curve


# Fused projections (Phi-3) stand for the separate ones the config names.
_FUSED = {"qkv_proj": ("q_proj", "k_proj", "v_proj"), "gate_up_proj": ("gate_proj", "up_proj")}


def lora_targets(model: Any, wanted: tuple[str, ...]) -> list[str]:
    """The configured LoRA targets as this model names its linear layers: a fused projection
    (``qkv_proj``, ``gate_up_proj``) stands for the separate ones it fuses; names the model
    lacks are dropped (none left is an error naming both lists)."""
    import torch

    present = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    targets = [name for name in wanted if name in present]
    targets += [fused for fused, parts in _FUSED.items() if fused in present and set(parts) & set(wanted)]
    if not targets:
        raise ValueError(
            f"none of [train] target_modules {list(wanted)} is a linear layer of this model "
            f"(it has {sorted(present)})"
        )
    return targets


def add_lora(model: Any, lora: Lora, seed: int, *, gradient_checkpointing: bool = False) -> Any:
    """G(N) wrapped with a fresh LoRA (peft freezes every base weight); its init is seeded.
    The adapter's weights are float32 whatever the base's dtype (peft's
    ``autocast_adapter_dtype``), so the optimizer steps in float32 (mixed precision)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)  # the LoRA init (and dropout) draw from here on
    config = LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=lora_targets(model, lora.target_modules), task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft asks transformers 5 a deprecated question
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing", category=FutureWarning)
        peft_model = get_peft_model(model, config, autocast_adapter_dtype=True)
    if gradient_checkpointing:
        peft_model.enable_input_require_grads()  # the frozen embeddings would cut the graph
        base: Any = peft_model.get_base_model()
        base.activation_checkpointing_enable({"use_reentrant": False})
    peft_model.train()
    return peft_model


def forward(model: Any, autocast: Any = None, **inputs: Any) -> Any:
    """The student's logits. With an ``autocast`` dtype (``precision.compute_dtype``) the forward
    runs under ``torch.autocast`` in it and peft's casting of each LoRA input to a float32 copy
    is off: the adapter takes the base's activations as they are (``adapters.training.precision``)."""
    import torch
    from peft.helpers import disable_input_dtype_casting

    kind = next(model.parameters()).device.type
    mixed = autocast is not None
    with torch.autocast(kind, dtype=autocast, enabled=mixed), disable_input_dtype_casting(model, active=mixed):
        return model(**inputs).logits


def train_step(
    model: Any, optimizer: Any, batch: dict[str, Any], distill: Distill, w: float, device: Any,
    *, max_grad_norm: float = 0.0, autocast: Any = None,
) -> LossParts:
    """One optimizer step on a teacher-cache batch; returns the loss parts (total detached).
    The gradient's global norm is clipped to ``max_grad_norm`` first (0: no clipping). The
    forward runs in the ``autocast`` dtype when one is given (``forward``); the loss is float32
    either way."""
    import torch

    t: dict[str, Any] = {k: (v.to(device) if v is not None else None) for k, v in batch.items()}
    logits = forward(model, autocast, input_ids=t["input_ids"], attention_mask=t["attention_mask"])
    parts = distill_loss(
        logits, t["labels"], t["t1_vals"], t["t1_idx"], t["t2_vals"], t["t2_idx"],
        alpha=distill.alpha, beta=distill.beta, temperature=distill.temperature,
        stabilizer_weight=w, row_teachers=t.get("teachers"),
    )
    optimizer.zero_grad(set_to_none=True)
    parts.total.backward()
    if max_grad_norm > 0:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    return parts._replace(total=parts.total.detach())


def _save_weights(model: Any, tokenizer: Any, out: Path, parent: str) -> None:
    """The adapter, then the merged model (``adapters.models.merge``: the same bytes on every
    CPU, so the archive can keep the adapter alone) and its merge record beside the adapter."""
    from adapters.models.hf import save_generation  # the models adapter's one way to save
    from adapters.models.merge import merge_lora, record_merge

    model.save_pretrained(str(out / "adapter"))
    merged = merge_lora(model)
    save_generation(merged, tokenizer, out / "weights")
    record_merge(out / "adapter", parent=parent, merged=merged)


def _finish(run: _Run, out: Path, status: str, breach: Any = None, reason: str = "") -> None:
    _write_json(out / "evo_manifest.json", manifest(run.spec, run))
    _write_json(out / "training.json", training_json(run, status, breach, reason))


def _train(spec: TrainSpec, progress: Progress | None, run: _Run) -> TrainResult:
    import torch
    from transformers.utils import logging as hf_logging

    from adapters.training.budget import BudgetMeter
    from adapters.training.precision import compute_dtype
    from adapters.training.recipe import DivergenceGuard, lr_factor
    from adapters.training.teacher_cache import TeacherCache, load_model, load_tokenizer, model_hash

    out = Path(spec.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run.meter = meter = BudgetMeter(spec.budget, out, spec.device)
    hf_logging.disable_progress_bar()  # a worker's stderr is not a terminal the user reads
    _seed(spec.seed, spec.threads, spec.device)
    if not Path(spec.parent_dir).is_dir():
        raise FileNotFoundError(f"parent model folder not found: {spec.parent_dir}")
    if spec.stabilizer_dir and not Path(spec.stabilizer_dir).is_dir():
        raise FileNotFoundError(f"stabilizer model folder not found: {spec.stabilizer_dir}")
    if not spec.example_ids:
        raise ValueError("no training examples")

    cache = TeacherCache(spec.cache_path)
    missing = [i for i in spec.example_ids if i not in cache]
    if missing:
        raise ValueError(f"{len(missing)} example ids not in the teacher cache (first: {missing[0]})")
    if cache.has_stabilizer != bool(spec.stabilizer_dir):
        raise ValueError("the teacher cache and the spec disagree on the stabilizer")
    run.hashes["parent"] = spec.parent_hash or model_hash(spec.parent_dir)
    if spec.stabilizer_dir:
        run.hashes["stabilizer"] = spec.stabilizer_hash or model_hash(spec.stabilizer_dir)
    for role, key in (("primary", "parent"), ("stabilizer", "stabilizer")):
        built = (cache.index.get(role) or {}).get("blake3")
        if built and key in run.hashes and built != run.hashes[key]:
            raise ValueError(f"the teacher cache was built from another {key} ({built[:12]})")
    _write_json(out / "train_args.json", train_args(spec, run, cache))
    breach = meter.after_save()

    if breach is None:
        model = load_model(spec.parent_dir, spec.device, spec.dtype)  # frozen base (precision.py)
        tokenizer = load_tokenizer(spec.parent_dir)
        vocab = int(model.get_output_embeddings().weight.shape[0])
        if vocab != cache.vocab_size:
            raise ValueError(f"student vocab {vocab} != teacher cache vocab {cache.vocab_size}")
        autocast = compute_dtype(spec.dtype)
        model = add_lora(model, spec.lora, spec.seed, gradient_checkpointing=spec.gradient_checkpointing)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=spec.learning_rate)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, spec.steps, spec.schedule)
        )
        guard = DivergenceGuard(spec.schedule)
        batches = _batches(spec.example_ids, spec.batch_size, spec.seed)
        dev = torch.device(spec.device)

    while breach is None and run.steps < spec.steps:
        breach = meter.before_step()
        if breach is not None:
            break
        b = cache.batch(next(batches))
        parts = train_step(
            model, optimizer, b, spec.distill, run.effective_w, dev,
            max_grad_norm=spec.schedule.max_grad_norm, autocast=autocast,
        )
        scheduler.step()
        loss = float(parts.total)
        guard.check(loss)  # raises Diverged: the run fails with the reason, nothing is exported
        if run.steps == 0:
            run.loss_start = loss
        run.loss_final = loss
        if run.steps % curve_every(spec.steps) == 0 or run.steps + 1 == spec.steps:
            run.curve.append((run.steps + 1, round(loss, 5)))
        run.last = {"ce": float(parts.ce), "kd": float(parts.kd)}
        breach = meter.after_step(int(b["attention_mask"].sum()))  # type: ignore[union-attr]
        run.steps = meter.steps
        if progress is not None:
            progress({
                "candidate": spec.candidate, "step": run.steps, "steps": spec.steps, "loss": loss,
                "tokens": meter.tokens, "budget_left": meter.left(),
            })

    if breach is None:
        _save_weights(model, tokenizer, out, spec.parent)
        _finish(run, out, "finished")
        breach = meter.after_save()
    if breach is not None:
        resource, limit, used = breach
        _finish(run, out, "breached", breach)
        return run.result("breached", resource=resource, limit=limit, used=used)
    return run.result("finished")


def _one_line(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:400] + where


def train(spec: TrainSpec, progress: Progress | None = None) -> TrainResult:
    """Train one candidate; ``progress`` gets a small dict after every step. Never raises."""
    run = _Run(spec)
    try:
        return _train(spec, progress, run)
    except Exception as exc:  # any failure is the candidate's outcome, not the caller's crash
        from adapters.training.recipe import Diverged

        reason = str(exc) if isinstance(exc, Diverged) else _one_line(exc)
        try:
            out = Path(spec.out_dir)
            if out.is_dir():
                _finish(run, out, "failed", None, reason)
        except Exception:
            pass
        return run.result("failed", reason=reason)
