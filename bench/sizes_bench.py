"""Real sizes (issue 14): a ~0.5B-parameter Llama built here, through evo's own paths.

The model: Llama-shaped, hidden 1024, 32 layers, intermediate 2816, 16 heads, vocab 32000 (the
demo corpus's byte-level BPE tokenizer trained to at most that; the rest of the rows are unused),
random weights saved in bf16 as published checkpoints are: 0.48B parameters. Figures, each
beside its goal and an anchor measured in the same run:

- ``evo init --base-model`` wall time (a child process: copy, hash, GGUF export in the served
  type config ``[model] gguf_type`` "auto" picks, f16 here, parity check), goal < 120 s; anchor:
  copying the weights folder (the floor of any init that copies them);
- the window's teacher cache (the teacher in the dtype "auto" picks) and one student's 20 steps
  in a child process (``adapters.training.trainer.train`` with the default config's precision,
  activation checkpointing and LoRA: r 16 on every projection, batch 8), twice: on the corpus's
  short examples (~23 tokens) and on full-length ones (every row at the cache's 128 tokens, the
  most a step can hold): peak RSS in GiB (goal < 3 GB), training tokens/s, seconds per step and
  the 20-step window (goal: feasible on 2 cores, i.e. minutes); anchor: the base weights' bytes
  in memory (bf16) and the teacher's forward-only tokens/s;
- llama.cpp serving: tokens/s of generation and of prompt processing on the f16 GGUF and on
  q4_k_m made from it (``adapters.serving.quantize``), with the quantized file's check;
- disk per generation: ``export.json``'s ``disk`` of the genesis.

Runs only when asked (it takes minutes and ~6 GB of memory): ``python -m bench sizes`` or
``BENCH_SIZES=1 make bench``. ``BENCH_QUICK=1``: 5 training steps instead of 20.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Report = Callable[[str, str, str, str], None]

QUICK = os.environ.get("BENCH_QUICK") == "1"
STEPS = 5 if QUICK else 20
SHAPE = {"hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 32, "num_attention_heads": 16}
VOCAB = 32000
ROOT = Path(__file__).resolve().parent.parent
GB = 1e9


def wanted() -> bool:
    return os.environ.get("BENCH_SIZES") == "1" or any("sizes" in a for a in sys.argv[1:])


def build_model(folder: Path) -> int:
    """The random ~0.5B Llama and its tokenizer, saved in bf16; its parameter count."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from adapters.models.demo import train_tokenizer
    from adapters.models.hf import save_generation

    tokenizer = train_tokenizer(vocab_size=VOCAB)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB, num_key_value_heads=SHAPE["num_attention_heads"], max_position_embeddings=2048,
        tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, **SHAPE,
    )
    with torch.device("cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    save_generation(model, tokenizer, folder)
    return sum(p.numel() for p in model.parameters())


def _children() -> tuple[float, float]:
    """(peak RSS in GB of the largest child waited for so far, CPU seconds of all of them)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_maxrss * 1024 / GB, usage.ru_utime + usage.ru_stime


def _python(code: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


_TRAIN = """
import json, sys, msgspec
from adapters.training.spec import TrainSpec
from adapters.training.trainer import train
spec = msgspec.json.decode(sys.argv[1].encode(), type=TrainSpec)
print(msgspec.json.encode(train(spec)).decode())
"""

_CACHE = """
import json, sys, time
from adapters.training.teacher_cache import build_cache
a = json.loads(sys.argv[1])
info = build_cache(a["parent"], None, [tuple(x) for x in a["examples"]], a["out"], max_seq_len=128, top_k=64,
                   batch_size=8, model_dtype=a["dtype"])
import resource
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
print(json.dumps({"seconds": info.seconds, "tokens": info.tokens, "rss_gb": rss}))
"""


_FORWARD = """
import json, sys, time, torch
from adapters.models.hf import load_generation
from adapters.training.precision import torch_dtype
torch.set_num_threads(2)
model, _ = load_generation(sys.argv[1], dtype=torch_dtype(sys.argv[2]))
ids = torch.randint(0, 2000, (8, 24))
with torch.no_grad():
    model(ids)
    t = time.perf_counter()
    model(ids)
print(json.dumps({"tokens_per_s": ids.numel() / (time.perf_counter() - t)}))
"""


def _forward_rate(folder: Path, dtype: str) -> float:
    r = _python(_FORWARD, str(folder), dtype)
    return float(json.loads(r.stdout.strip().splitlines()[-1])["tokens_per_s"]) if r.returncode == 0 else 0.0


def _examples(n: int, lines_each: int = 3) -> list[tuple[str, str]]:
    """n examples of ``lines_each`` demo-corpus lines (3: ~23 tokens; 24: past 128)."""
    from adapters.models.demo import CORPUS_PATH

    lines = [line for line in CORPUS_PATH.read_text().splitlines() if line.strip()]
    return [
        (f"ex{i:03d}", " ".join(lines[(i * lines_each + j) % len(lines)] for j in range(lines_each)))
        for i in range(n)
    ]


def _serve(gguf: Path, prompt: str, tokens: int = 64) -> tuple[float, float]:
    """(generation tokens/s, prompt tokens/s) on 2 threads, f32 KV cache (evo's settings)."""
    from adapters.serving.llama import load_llama

    llm = load_llama(gguf, n_ctx=512, n_threads=2)
    try:
        ids = llm.tokenize(prompt.encode(), add_bos=True)
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        prompt_s = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(tokens):
            llm.eval([int(llm.scores[llm.n_tokens - 1].argmax())])
        gen_s = time.perf_counter() - t
    finally:
        llm.close()
    return tokens / gen_s, len(ids) / prompt_s


def run(report: Report) -> None:
    if not wanted():
        print("<!-- sizes_bench: skipped (python -m bench sizes, or BENCH_SIZES=1) -->", file=sys.stderr)
        return
    import msgspec

    from adapters.serving.quantize import check_quantized, quantize_gguf
    from adapters.training.precision import parameter_count, resolve_checkpointing, resolve_dtype
    from adapters.training.spec import Distill, Lora, TrainSpec
    from evo_core.config import EvoConfig
    from evo_core.values import BudgetLimits

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp_name:
        tmp = Path(tmp_name)
        base = tmp / "base"
        t = time.perf_counter()
        params = build_model(base)
        built = time.perf_counter() - t
        weights_bytes = sum(p.stat().st_size for p in base.glob("*.safetensors"))
        t = time.perf_counter()
        shutil.copytree(base, tmp / "copy")
        copy_s = time.perf_counter() - t
        shutil.rmtree(tmp / "copy")
        report(
            f"model: random Llama {params / 1e6:.0f}M params (hidden 1024, 32 layers, vocab {VOCAB}), bf16",
            f"built in {built:.0f} s, {weights_bytes / GB:.2f} GB safetensors", "~0.5B", "",
        )

        home = tmp / "home"
        _, cpu_before = _children()
        t = time.perf_counter()
        r = _python(
            "import sys; from adapters.cli import main; sys.exit(main(sys.argv[1:]))",
            "--home", str(home), "init", "--base-model", str(base),
        )
        init_s = time.perf_counter() - t
        init_rss, cpu_after = _children()  # the first child: its own peak
        init_cpu = cpu_after - cpu_before
        if r.returncode != 0:
            report("evo init --base-model", f"FAILED: {r.stderr.strip().splitlines()[-1:]}", "< 120 s", "")
            return
        genesis = next(p for p in (home / "models" / "archive").iterdir() if p.is_dir())
        record = json.loads((genesis / "export.json").read_text())
        report(
            "evo init --base-model (copy, hash, GGUF export, parity)",
            f"{init_s:.0f} s wall, {init_cpu:.0f} s CPU, peak RSS {init_rss:.1f} GB; served {record['dtype']}, parity "
            f"{'passed' if record['parity']['passed'] else 'FAILED'} (max diff {record['parity']['max_logit_diff']:.2g})",
            "< 120 s", f"copy of the weights folder: {copy_s:.1f} s; GGUF export {record['seconds']:.0f} s "
            "(the rest: hashing and the parity check)",
        )
        disk = record.get("disk", {})
        report(
            "disk of the genesis generation (export.json)",
            ", ".join(f"{k} {v / GB:.2f} GB" for k, v in disk.items()), "", f"f32 weights would be {params * 4 / GB:.2f} GB",
        )

        rates = {d: _forward_rate(genesis / "weights", d) for d in ("bfloat16", "float32")}
        report(
            "teacher forward, 8x24 tokens, 2 threads: bf16 vs float32 (what [model] dtype auto picks on)",
            f"{rates['bfloat16']:.0f} vs {rates['float32']:.0f} tokens/s", "bf16 faster where auto picks it",
            "the same model and batch in float32",
        )
        cfg = EvoConfig()
        parameters = parameter_count(genesis)
        dtype = resolve_dtype(cfg.model.dtype, "cpu", parameters)
        checkpointing = resolve_checkpointing(cfg.model.gradient_checkpointing, parameters)
        tc = cfg.train
        students = []
        for rows, examples in (("short rows, ~23 tokens", _examples(64)), ("full rows, 128 tokens", _examples(32, 24))):
            cache = tmp / f"cache-{len(examples)}.safetensors"
            r = _python(_CACHE, json.dumps({
                "parent": str(genesis / "weights"), "examples": examples, "out": str(cache), "dtype": dtype,
            }))
            if r.returncode != 0:
                report("teacher cache", f"FAILED: {r.stderr.strip().splitlines()[-1:]}", "", "")
                return
            built_cache = json.loads(r.stdout.strip().splitlines()[-1])
            teacher_tps = built_cache["tokens"] / built_cache["seconds"]
            report(
                f"teacher cache ({len(examples)} examples, {built_cache['tokens']} tokens, teacher in {dtype})",
                f"{built_cache['seconds']:.0f} s, {teacher_tps:.0f} tokens/s, peak RSS {built_cache['rss_gb']:.1f} GB",
                "", "",
            )
            student = tmp / f"student-{len(examples)}"
            spec = TrainSpec(
                candidate="bench-a", window=1, gen=1, branch="a", seed=1, strategy="uniform_sample",
                parent="G000", parent_dir=str(genesis / "weights"), stabilizer=None, stabilizer_dir=None,
                cache_path=str(cache), example_ids=tuple(i for i, _ in examples), new_count=len(examples),
                data_delta_hash="0" * 64, out_dir=str(student),
                budget=BudgetLimits(max_steps=1000, max_walltime_minutes=60.0, max_gpu_memory_gb=100.0,
                                    max_tokens_processed=10**9, max_disk_gb=100.0),
                distill=Distill(alpha=0.5, beta=0.5, temperature=2.0, stabilizer_weight=0.3),
                lora=Lora(r=tc.lora_r, alpha=tc.lora_alpha, dropout=tc.lora_dropout, target_modules=tc.target_modules),
                steps=STEPS, batch_size=tc.batch_size, learning_rate=tc.learning_rate, threads=2, dtype=dtype,
                gguf_type="f16", gradient_checkpointing=checkpointing,
            )
            r = _python(_TRAIN, msgspec.json.encode(spec).decode())
            if r.returncode != 0 or not (student / "training.json").is_file():
                report("one student", f"FAILED: {(r.stderr or r.stdout).strip().splitlines()[-1:]}", "", "")
                return
            tr = json.loads((student / "training.json").read_text())
            per_step = tr["walltime_minutes"] * 60 / max(1, tr["steps"])
            report(
                f"one student, {tr['steps']} steps of batch {tc.batch_size}, {rows} (base {dtype}, LoRA f32 under "
                f"bf16 autocast, activation checkpointing {'on' if checkpointing else 'off'}), 2 threads",
                f"peak RSS {tr['peak_memory_gb']:.2f} GiB; {tr['tokens_per_second']:.0f} tokens/s; {per_step:.1f} s/step "
                f"(incl. load, merge and save)",
                "< 3 GB", f"base weights in {dtype}: {params * (4 if dtype == 'float32' else 2) / GB:.2f} GB; "
                f"teacher forward {teacher_tps:.0f} tokens/s",
            )
            report(
                f"a 20-step window, {rows}: 3 students sharing 2 cores (from the run above)",
                f"~{3 * 20 * per_step / 60:.0f} min", "feasible on 2 cores", f"1 student: ~{20 * per_step / 60:.1f} min",
            )
            students.append(student)
        out = students[0]  # the short rows' student
        gen_bytes = sum(p.stat().st_size for p in (out / "weights").glob("*.safetensors"))
        adapter_bytes = sum(p.stat().st_size for p in (out / "adapter").iterdir())
        report(
            "a student's files: adapter/ (archived) and merged weights/ (work folder, then the cache: not archived)",
            f"adapter {adapter_bytes / 1e6:.1f} MB, weights {gen_bytes / GB:.2f} GB", "one copy of the weights",
            f"f32 weights would be {params * 4 / GB:.2f} GB",
        )

        f16 = genesis / "model.gguf"
        q4 = tmp / "q4_k_m.gguf"
        q_s = quantize_gguf(f16, q4, "q4_k_m")
        check = check_quantized(f16, q4, "q4_k_m", seconds=q_s)
        prompt = " ".join(line for _, line in _examples(4))[:600]
        for label, path in (("f16", f16), ("q4_k_m", q4)):
            gen_tps, prompt_tps = _serve(path, prompt)
            report(
                f"llama.cpp serving {label} ({path.stat().st_size / GB:.2f} GB), 2 threads",
                f"{gen_tps:.1f} tokens/s generation, {prompt_tps:.0f} tokens/s prompt", "reported",
                check.summary() if label == "q4_k_m" else f"quantizing to q4_k_m: {q_s:.0f} s",
            )
