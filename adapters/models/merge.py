"""A LoRA adapter merged into its base: the same bytes on every CPU, so a generation can be kept
as its adapter alone and its merged weights rebuilt when a window needs them.

peft's ``merge_and_unload`` adds ``B @ A * scaling`` with a matrix product whose summation order
(and fused multiply-adds) depend on the CPU's kernels, so the merged weights of one adapter differ
by a rounding from machine to machine. ``merge_lora`` computes the same sum in float64 as ``r``
outer products, each an elementwise IEEE product of two float32 values (exact in float64), added
in the order k = 0..r-1 by separate elementwise operations (no fused multiply-add), then scaled
and added to the base weight in float64 and rounded once to the base's dtype: every step is
correctly rounded, so the result is a function of the bytes alone. (Its arithmetic is also closer
to exact than a float32 or bfloat16 ``B @ A``.)

``tensors_hash`` names a model's weights by their contents (name, dtype, shape, bytes), not by the
files a library wrote them to, so a rebuilt generation is checked against the archived record
even if a newer transformers lays out its safetensors differently.

The training worker merges with ``merge_lora`` and records ``MERGE_RECORD`` in ``adapter/``
(archived with it); ``materialize`` rebuilds the merged folder from the parent's folder and the
adapter and checks the hash (``adapters.training.students.generation_dir`` calls it).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from adapters.models.hf import ModelError

MERGE_RECORD = "evo_merge.json"  # in adapter/: {"parent", "dtype", "tensors"}


class MergeError(ModelError):
    """The adapter cannot be merged, or the rebuilt weights are not the recorded ones (one line)."""


def merge_lora(peft_model: Any) -> Any:
    """The base model of ``peft_model`` with every LoRA layer's update merged in (see the module
    doc) and the LoRA layers removed."""
    import torch
    from peft.tuners.lora import LoraLayer

    with torch.no_grad():
        for name, layer in peft_model.named_modules():
            if not isinstance(layer, LoraLayer):
                continue
            module: Any = layer  # peft's LoraLayer is typed through nn.Module's __getattr__
            for adapter in module.active_adapters:
                if adapter not in module.lora_A:
                    continue
                if getattr(module, "fan_in_fan_out", False) or module.use_dora.get(adapter, False):
                    raise MergeError(f"{name}: only plain LoRA on linear layers is merged (no DoRA, no Conv1D)")
                a = module.lora_A[adapter].weight.detach().to(torch.float64)  # (r, in)
                b = module.lora_B[adapter].weight.detach().to(torch.float64)  # (out, r)
                delta = torch.zeros((b.shape[0], a.shape[1]), dtype=torch.float64)
                for k in range(a.shape[0]):
                    delta = delta + b[:, k : k + 1] * a[k : k + 1, :]
                delta = delta * float(module.scaling[adapter])
                weight = module.get_base_layer().weight
                weight.copy_((weight.detach().to(torch.float64) + delta).to(weight.dtype))
    return peft_model.unload()


def tensors_hash(model: Any) -> str:
    """blake3 over every tensor of ``model.state_dict()`` by name: its name, dtype, shape and
    bytes (tied tensors once per name, as the state dict lists them)."""
    import blake3
    import torch

    h = blake3.blake3()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().contiguous().cpu()
        h.update(f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{list(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def record_merge(adapter_dir: Path, *, parent: str, merged: Any) -> dict[str, str]:
    """Write ``adapter_dir/MERGE_RECORD`` for ``merged`` (trained on ``parent``) and return it."""
    import torch

    dtype = next((p.dtype for p in merged.parameters() if p.is_floating_point()), torch.float32)
    record = {"parent": parent, "dtype": str(dtype).removeprefix("torch."), "tensors": tensors_hash(merged)}
    (adapter_dir / MERGE_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return record


def read_record(adapter_dir: Path) -> dict[str, str] | None:
    """The merge record beside an adapter; None when there is none (or it is not a record)."""
    try:
        record = json.loads((adapter_dir / MERGE_RECORD).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all(isinstance(record.get(k), str) for k in ("parent", "dtype", "tensors")):
        return None
    return record


def materialize(adapter_dir: Path, parent_dir: Path, out_dir: Path) -> Path:
    """Rebuild the merged HF folder of an adapter-only generation at ``out_dir`` (written beside
    it, checked, then renamed into place) from its parent's folder and ``adapter_dir``; a result
    whose ``tensors_hash`` is not the recorded one raises ``MergeError`` and leaves nothing."""
    import torch
    from peft import PeftModel

    from adapters.models.hf import load_generation, save_generation

    record = read_record(adapter_dir)
    if record is None:
        raise MergeError(f"{adapter_dir}: no {MERGE_RECORD}: this adapter does not say how it was merged")
    dtype = getattr(torch, record["dtype"], None)
    if not isinstance(dtype, torch.dtype):
        raise MergeError(f"{adapter_dir / MERGE_RECORD}: unknown dtype {record['dtype']!r}")
    model, tokenizer = load_generation(parent_dir, dtype=dtype)
    merged = merge_lora(PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False))
    got = tensors_hash(merged)
    if got != record["tensors"]:
        raise MergeError(
            f"{adapter_dir}: merged into {parent_dir} it gives weights {got[:16]}, the archive recorded "
            f"{record['tensors'][:16]} (the parent's weights are not the ones it trained on)"
        )
    tmp = out_dir.with_name(f".{out_dir.name}.merging-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_generation(merged, tokenizer, tmp)
        shutil.rmtree(out_dir, ignore_errors=True)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir
