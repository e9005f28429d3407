"""Which dtype the frozen base and the teachers are loaded in (config ``[model] dtype``).

Mixed precision, the standard way: the frozen base model and the teachers are held in the
chosen dtype (bf16 halves their memory and, where the hardware has bf16 kernels, doubles matmul
speed); the LoRA adapter's weights, their gradients and the optimizer's state stay float32
(peft's ``autocast_adapter_dtype`` upcasts the adapter), and the loss is computed in float32.

How the adapter meets the activations (``compute_dtype``): on a bfloat16 base the student's
forward runs under ``torch.autocast`` in bfloat16 and peft's input casting is off, so the LoRA's
matmuls take the base's bf16 activations as they are (its float32 weights cast once per step,
its gradients cast back to float32): the standard bf16 mixed precision. The alternative, peft's
default, casts each projection's input to a float32 copy and autograd keeps every copy for the
backward pass: on the ~0.5B bench model (7 projections, 32 layers) that was ~35 KB a token a
layer, about 0.5 GB of a batch of 8 x 53 tokens. A float16 base keeps peft's float32 casting:
float16 gradients of a fresh adapter would underflow without loss scaling.

``"auto"`` (``resolve_dtype``):

- float32 below ``AUTO_MIN_PARAMETERS`` (50M) parameters, whatever the hardware: small models
  are cheap in float32, and the embedded demo model's training outcomes are tuned (and tested)
  in float32;
- otherwise bfloat16 on CUDA when the device supports it (float16 on older GPUs), and on CPU
  when it has native bf16 kernels (AVX512-BF16 / AMX, ``torch.ops.mkldnn._is_mkldnn_bf16_supported``).
  Measured on this project's 2-core AVX512-BF16 CPU, one thread, a [512 x 1024] @ [1024 x 2816]
  matmul: float32 92 GFLOP/s, bfloat16 208, float16 22. A CPU without bf16 kernels stays in
  float32 (float16 is ~4x slower than float32 there).

The parameter count comes from the safetensors headers (no tensor is read).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Literal

DtypeSetting = Literal["auto", "float32", "bfloat16", "float16"]
DTYPE_SETTINGS: tuple[DtypeSetting, ...] = ("auto", "float32", "bfloat16", "float16")
AUTO_MIN_PARAMETERS = 50_000_000
_ELEMENT_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def parameter_count(folder: str | os.PathLike[str]) -> int:
    """Elements over every tensor in the folder's safetensors files (headers only; ``*.bin``
    weights are estimated from their size at 4 bytes a parameter)."""
    from adapters.models.hf import model_dir

    path = model_dir(folder)
    total = 0
    shards = sorted(path.glob("*.safetensors"))
    for shard in shards:
        with open(shard, "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header: dict[str, Any] = json.loads(f.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                count = 1
                for dim in info["shape"]:
                    count *= int(dim)
                total += count
    if not shards:
        total = sum(p.stat().st_size for p in path.glob("*.bin") if not p.name.startswith("training_args")) // 4
    return total


def bf16_supported(device: str) -> bool:
    """Native bf16 compute on this device (CUDA: ``is_bf16_supported``; CPU: oneDNN's check)."""
    import torch

    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_dtype(setting: str, device: str, parameters: int) -> str:
    """The concrete dtype name ("float32", "bfloat16" or "float16") for a setting (see the module doc)."""
    if setting not in DTYPE_SETTINGS:
        raise ValueError(f"unknown dtype {setting!r}; one of {', '.join(DTYPE_SETTINGS)}")
    if setting != "auto":
        return setting
    if parameters < AUTO_MIN_PARAMETERS:
        return "float32"
    if bf16_supported(device):
        return "bfloat16"
    return "float16" if device.startswith("cuda") else "float32"


def torch_dtype(name: str) -> Any:
    """The torch dtype of a concrete name."""
    import torch

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"unknown dtype {name!r}; one of {', '.join(dtypes)}")
    return dtypes[name]


def compute_dtype(name: str) -> Any:
    """The autocast dtype of a student's forward over a base held in ``name`` (module doc):
    torch.bfloat16 for "bfloat16", None (no autocast, peft's float32 casting) otherwise."""
    import torch

    return torch.bfloat16 if name == "bfloat16" else None


def resolve_checkpointing(setting: bool | str, parameters: int) -> bool:
    """Config ``[model] gradient_checkpointing``: "auto" is on from ``AUTO_MIN_PARAMETERS``
    (activations dominate a real model's step: on the ~0.5B bench model a batch of 8 x 128
    tokens peaked at 4.6 GiB without it, 2.6 GiB with it, for 14 % more time a step), off under
    (the demo model's outcomes are tuned, and tested, without it)."""
    if setting == "auto":
        return parameters >= AUTO_MIN_PARAMETERS
    return bool(setting)


def resolve_gguf_type(setting: str, parameters: int) -> str:
    """The served GGUF type for config ``[model] gguf_type``: "auto" is f32 under
    ``AUTO_MIN_PARAMETERS`` (the demo model's parity and behaviour are pinned in f32), else f16
    (half the bytes, parity-checked directly; quantized types only when asked for)."""
    if setting != "auto":
        return setting
    return "f32" if parameters < AUTO_MIN_PARAMETERS else "f16"
