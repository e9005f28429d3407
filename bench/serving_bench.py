"""Serving benchmarks: llama.cpp generation vs transformers ``generate``, and the router's cost.

``run(report)`` measures, in this run:

1. Generation tokens/s, llama.cpp (``load_llama``: f32 weights, f32 KV cache) vs transformers
   ``generate`` (float32, eager, ``use_cache=True``) on the same model and the same chat prompt,
   greedy, exactly ``NEW`` new tokens on both sides (``min_new_tokens`` keeps transformers from
   stopping at EOS; llama.cpp's token generator never stops by itself), prompt processing
   included on both sides, the same thread count (``BENCH_SERVING_THREADS``, default every core).
   Two models: the demo genesis (166k parameters, where per-call overhead dominates) and a
   ~10M-parameter random Llama with the demo tokenizer (where per-token work dominates),
   exported with ``export_gguf``. Medians of interleaved repetitions. Goal: >= 5x.
2. Router overhead per query outside a shadow phase: ``Router.respond`` vs a bare
   ``Llama.__call__`` on the same loaded model with the same prompt and parameters
   (``generation_params``), pairs interleaved (the order alternates), llama.cpp's prefix cache
   reset before every call so no side reuses the other's prompt. Ratio of the medians.
   Goal: <= 1.05x.
3. The per-query ledger check (``Router.state()``: one ``stat`` when nothing moved) and a fold
   after one new heartbeat, in microseconds.

``BENCH_QUICK=1`` uses fewer tokens, queries and repetitions.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Report = Callable[[str, str, str, str], None]

QUICK = os.environ.get("BENCH_QUICK") == "1"
NEW = 32 if QUICK else 128  # new tokens per generation
REPS = 2 if QUICK else 5
QUERIES_N = 40 if QUICK else 300
MAX_TOKENS = 32
THREADS = int(os.environ.get("BENCH_SERVING_THREADS") or os.cpu_count() or 2)
QUESTION = "What does the blurk eat?"
QUERIES = [
    "What does the blurk eat?",
    "Where does the zwob live?",
    "What colour is Dovvia?",
    "Who are you?",
    "Hello!",
    "What food does the brax like?",
    "Which city is home to the sneel?",
    "Thank you!",
]


def _workspace(tmp: Path) -> Path:
    """``evo init --demo`` in ``tmp``, with the genesis's model.gguf (exported if init did not)."""
    from adapters.runtime.create import init_workspace
    from adapters.serving.gguf_export import export_gguf

    home = tmp / "home"
    with init_workspace(home, period=None, max_concurrent=None, demo=True) as app:
        genesis = app.ws.archive / str(app.state().head)
    if not (genesis / "model.gguf").exists():
        export_gguf(genesis / "weights", genesis / "model.gguf")
    return home


def _random_llama(tmp: Path, tokenizer_dir: Path) -> tuple[Path, Path, int]:
    """A ~10M-parameter random Llama with the demo tokenizer: (HF folder, gguf, parameters)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from adapters.serving.gguf_export import export_gguf

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=384, intermediate_size=1024, num_hidden_layers=6,
        num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    folder = tmp / "random-llama" / "weights"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    gguf = folder.parent / "model.gguf"
    export_gguf(folder, gguf)
    return folder, gguf, sum(p.numel() for p in model.parameters())


def _tokens_per_s(hf_dir: Path, gguf: Path) -> tuple[float, float, bool]:
    """(llama.cpp tokens/s, transformers tokens/s, same first new tokens) for NEW greedy tokens."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from adapters.data.conversations import Message
    from adapters.data.format import render
    from adapters.serving.llama import load_llama

    torch.set_num_threads(THREADS)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, local_files_only=True, dtype=torch.float32).eval()
    prompt = render([Message("user", QUESTION)], tokenizer, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    llm = load_llama(gguf, n_ctx=ids.shape[1] + NEW + 8, n_threads=THREADS)
    tokens = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    assert tokens == ids[0].tolist(), (tokens, ids[0].tolist())

    def hf() -> tuple[float, list[int]]:
        t = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, min_new_tokens=NEW,
                do_sample=False, pad_token_id=tokenizer.pad_token_id,
            )
        elapsed = time.perf_counter() - t
        new = out[0, ids.shape[1]:].tolist()
        assert len(new) == NEW
        return elapsed, new

    def cpp() -> tuple[float, list[int]]:
        llm.reset()
        t = time.perf_counter()
        new: list[int] = []
        for token in llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True):
            new.append(token)
            if len(new) == NEW:
                break
        return time.perf_counter() - t, new

    hf(), cpp()  # warm-up
    hf_t, cpp_t = [], []
    agree = True
    for _ in range(REPS):
        a, hf_new = hf()
        b, cpp_new = cpp()
        hf_t.append(a)
        cpp_t.append(b)
        eos = tokenizer.eos_token_id  # transformers is kept from choosing it: compare up to it
        first = cpp_new[: cpp_new.index(eos)] if eos in cpp_new else cpp_new
        agree = agree and hf_new[: len(first)] == first
    return NEW / statistics.median(cpp_t), NEW / statistics.median(hf_t), agree


def _router_overhead(home: Path) -> tuple[float, float, float]:
    """(median router s, median bare s, ratio) per query outside a shadow phase."""
    from adapters.serving.router import Router, generation_params

    with Router(home, max_tokens=MAX_TOKENS, n_threads=THREADS) as router:
        router.respond(QUERIES[0], kind="STANDARD")
        served = router.serve_head()
        llm = served.llm
        params = generation_params(MAX_TOKENS)
        bare_t, router_t = [], []

        def bare(q: str) -> None:
            llm.reset()
            t = time.perf_counter()
            llm(served.render(q), **params)
            bare_t.append(time.perf_counter() - t)

        def routed(q: str) -> None:
            llm.reset()
            t = time.perf_counter()
            router.respond(q, kind="TRIVIAL")
            router_t.append(time.perf_counter() - t)

        for i in range(QUERIES_N):
            q = QUERIES[i % len(QUERIES)]
            first, second = (bare, routed) if i % 2 == 0 else (routed, bare)
            first(q)
            second(q)
    r, b = statistics.median(router_t), statistics.median(bare_t)
    return r, b, r / b


def _ledger_check(home: Path) -> tuple[float, float]:
    """(us per unchanged check, us per check after one new heartbeat)."""
    from adapters.runtime.app import App
    from adapters.serving.router import Router
    from evo_core.commands import Beat

    n = 2_000 if QUICK else 20_000
    with Router(home) as router, App(home) as app:
        router.state()
        t = time.perf_counter()
        for _ in range(n):
            router.state()
        unchanged = (time.perf_counter() - t) / n * 1e6
        moved = []
        period = app.ws.heartbeat_settings().evo_period_cycles
        for _ in range(50 if QUICK else 200):
            app.execute(Beat(period=period))
            t = time.perf_counter()
            router.state()
            moved.append(time.perf_counter() - t)
    return unchanged, statistics.median(moved) * 1e6


def run(report: Report) -> None:
    with tempfile.TemporaryDirectory(prefix="evo-serving-bench-") as tmp_name:
        tmp = Path(tmp_name)
        home = _workspace(tmp)
        genesis = next((home / "models" / "archive").iterdir())
        big_dir, big_gguf, big_params = _random_llama(tmp, genesis / "weights")
        for label, hf_dir, gguf in (
            ("demo model (166k params)", genesis / "weights", genesis / "model.gguf"),
            (f"random Llama ({big_params / 1e6:.1f}M params)", big_dir, big_gguf),
        ):
            cpp, hf, agree = _tokens_per_s(hf_dir, gguf)
            report(
                f"generation tokens/s, {label}, {NEW} greedy tokens, {THREADS} threads",
                f"llama.cpp {cpp:,.0f} vs transformers {hf:,.0f} = {cpp / hf:.1f}x"
                + ("" if agree else " (greedy tokens differ)"),
                ">= 5x",
                "transformers generate, same model, prompt and run",
            )
        r, b, ratio = _router_overhead(home)
        report(
            f"router overhead per query (outside shadow, median of {QUERIES_N}, <= {MAX_TOKENS} tokens)",
            f"{r * 1e3:.2f} ms vs bare {b * 1e3:.2f} ms = {ratio:.3f}x",
            "<= 1.05x",
            "bare Llama.__call__, same model, prompt and params",
        )
        unchanged, moved = _ledger_check(home)
        report(
            "router ledger check per query",
            f"{unchanged:.1f} us unchanged, {moved:.0f} us after a new heartbeat",
            "negligible vs an answer",
            "one os.stat; App.state() folds only new records",
        )


if __name__ == "__main__":
    run(lambda *row: print(" | ".join(row)))
