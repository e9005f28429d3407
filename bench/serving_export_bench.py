"""GGUF export time vs model size: the demo genesis and random Llama configs of ~1M, 5M and 20M
parameters, each written as f32 and f16 (``export_gguf``: read safetensors, permute, convert,
write, fsync, rename, blake3). Figures are the median of ``REPS`` exports; MB/s is the GGUF's
size over the time. The anchor is a bare copy of the same ``model.safetensors`` (read + write +
fsync): the floor of any export that touches every byte. ``BENCH_QUICK=1``: the demo and ~1M only,
one repetition. The parity check is timed once, on the demo model (it runs on every export).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Report = Callable[[str, str, str, str], None]

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = 1 if QUICK else 3

# name -> (hidden, intermediate, layers, heads); vocab 512 (the demo tokenizer) throughout.
CONFIGS = {
    "llama-1M": (128, 352, 4, 4),
    "llama-5M": (256, 688, 6, 8),
    "llama-20M": (512, 1376, 6, 8),
}


def _random_llama(root: Path, name: str, shape: tuple[int, int, int, int], tokenizer: Any) -> tuple[Path, int]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from adapters.models.hf import save_generation

    hidden, inter, layers, heads = shape
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=256,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    folder = save_generation(model, tokenizer, root / name)
    return folder, sum(p.numel() for p in model.parameters())


def _copy_seconds(src: Path, dst: Path) -> float:
    t = time.perf_counter()
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        shutil.copyfileobj(fi, fo, 1 << 20)
        fo.flush()
        os.fsync(fo.fileno())
    return time.perf_counter() - t


def run(report: Report) -> None:
    from adapters.models.demo import build_demo_genesis, train_tokenizer
    from adapters.serving.gguf_export import export_gguf
    from adapters.serving.parity import check_parity

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp_name:
        tmp = Path(tmp_name)
        demo = build_demo_genesis(tmp / "demo", steps=5 if QUICK else 150)
        models = [("demo", demo.weights, demo.parameters)]
        tokenizer = train_tokenizer()
        for name, shape in list(CONFIGS.items())[: 1 if QUICK else None]:
            folder, params = _random_llama(tmp, name, shape, tokenizer)
            models.append((name, folder, params))
        export_gguf(demo.weights, tmp / "warm.gguf")  # imports (transformers' tokenizer, gguf) once
        for name, folder, params in models:
            copy = statistics.median(
                _copy_seconds(folder / "model.safetensors", tmp / "copy.bin") for _ in range(REPS)
            )
            for dtype in ("f32", "f16"):
                infos = [export_gguf(folder, tmp / f"{name}.{dtype}.gguf", dtype=dtype) for _ in range(REPS)]
                seconds = statistics.median(i.seconds for i in infos)
                mb = infos[0].bytes / 1e6
                report(
                    f"export {name} ({params / 1e6:.2f}M params) {dtype}",
                    f"{seconds * 1e3:.0f} ms, {mb:.1f} MB, {mb / seconds:.0f} MB/s",
                    "",
                    f"copy of model.safetensors: {copy * 1e3:.0f} ms",
                )
        t = time.perf_counter()
        parity = check_parity(demo.weights, tmp / "demo.f32.gguf")
        report(
            "parity check, demo model f32 (14 prompts, 16 greedy tokens)",
            f"{time.perf_counter() - t:.1f} s, max logit diff {parity.max_logit_diff:.1e}",
            "passes, tolerance 1e-3",
            "",
        )
