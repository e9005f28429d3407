"""Child processes of ``bench.distill_bench`` (each side runs in its own process, same env).

``python -m bench._distill_setup fixture DIR N`` builds the fixture and prints one result line;
``python -m bench._distill_setup serve DIR SIDE THREADS [DEVICE]`` pays its imports once, prints a ``ready``
line, then runs one repetition per line read on stdin and prints one result line for each (result
lines start with ``@@bench ``), so the parent can interleave the sides' repetitions.

- fixture: a byte-level BPE tokenizer trained on ``adapters/data/demo_corpus.txt``, two tiny
  ``LlamaForCausalLM`` (G(N) = ``parent/``, G(N-1) = ``stabilizer/``, different seeds, same
  shape), N chat examples of more than ``SEQ`` tokens (``examples.json``: id + messages + the
  rendered text) and the shared teacher cache of both teachers (built ONCE, with
  ``adapters.training.teacher_cache.build_cache``).
- side ``ours`` (stdin ``REP STEPS WARMUP``): ``adapters.training.trainer.train`` on the cache (a
  fresh LoRA student each time); steady-state tokens/s from its progress timestamps.
- side ``gkd`` (stdin ``REP STEPS WARMUP``): TRL's ``GKDTrainer`` (lmbda=0, seq_kd False) with the
  same model (the teacher is a second copy of G(N)), data, batch, LoRA, steps and threads.
- side ``pool`` (stdin ``REP STEPS CANDIDATES``): ``adapters.training.pool.run_pool`` over
  CANDIDATES specs (threads = ``threads_per_worker``); the window's wall time.

Tokens/s everywhere = non-padding tokens through the student (``attention_mask.sum()``) per
second of a steady-state step: the median over the steps after the first WARMUP of each step's
tokens over its seconds (timed at the end of every step: our progress callback, a
``TrainerCallback.on_step_end`` for TRL). Model load, trainer construction, the first steps
(allocator warm-up) and saving are outside it. The mean over the same steps comes back as well.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

SEQ = 128
BATCH = 8
HIDDEN, LAYERS, HEADS, INTERMEDIATE, VOCAB, POSITIONS = 128, 4, 4, 256, 1000, 256
LR = 2e-3
# evo's defaults (evo_core.config): the same numbers go to both sides
ALPHA, BETA, TEMPERATURE, STABILIZER_WEIGHT = 0.1, 0.9, 2.0, 0.3
LORA_R, LORA_ALPHA, LORA_DROPOUT = 8, 16, 0.0
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
TOP_K = 64


def _steady(marks: list[tuple[float, int]], warmup: int) -> dict[str, float]:
    """Steady-state tokens/s from (time, tokens so far) marks taken at the end of every step:
    ``rate`` is the median over the steps after ``warmup`` of that step's tokens / seconds (robust
    to a noisy neighbour's bursts on a shared machine); ``mean_rate`` is the same steps' tokens
    over their total seconds."""
    import statistics

    steady = marks[warmup - 1:]
    per_step = [(n1 - n0) / (t1 - t0) for (t0, n0), (t1, n1) in zip(steady, steady[1:])]
    (t0, n0), (t1, n1) = steady[0], steady[-1]
    return {"rate": statistics.median(per_step), "mean_rate": (n1 - n0) / (t1 - t0)}


# ------------------------------------------------------------------------- fixture


def build_fixture(root: Path, n_examples: int) -> dict[str, Any]:
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from adapters.data.demo_world import CORPUS_PATH
    from adapters.models.demo import train_tokenizer
    from adapters.models.hf import save_generation, weights_hash
    from adapters.training.teacher_cache import build_cache

    start = time.perf_counter()
    torch.set_num_threads(1)  # not measured; one thread is the least hurt by a busy neighbour
    tok = train_tokenizer(CORPUS_PATH, VOCAB)
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
        max_position_embeddings=POSITIONS, tie_word_embeddings=False,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    params = 0
    for name, seed in (("parent", 0), ("stabilizer", 1)):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
        )
        params = sum(p.numel() for p in model.parameters())
        save_generation(model, tok, root / name)

    # chat examples: question/answer pairs of the demo corpus, as many turns as it takes to pass
    # SEQ tokens once rendered, so that both sides cut every example to exactly SEQ tokens
    lines = [ln for ln in CORPUS_PATH.read_text().splitlines() if ln.strip()]
    pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
    examples, p = [], 0
    for i in range(n_examples):
        messages: list[dict[str, str]] = []
        while True:
            q, a = pairs[p % len(pairs)]
            p += 1
            messages += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
            text = tok.apply_chat_template(messages, tokenize=False)
            if len(tok(text, add_special_tokens=False)["input_ids"]) >= SEQ + 8:
                break
        examples.append({"id": f"ex{i:05d}", "messages": messages, "text": text})
    (root / "examples.json").write_text(json.dumps(examples))

    info = build_cache(
        str(root / "parent"), str(root / "stabilizer"),
        [(e["id"], e["text"]) for e in examples], str(root / "cache.safetensors"),
        max_seq_len=SEQ, top_k=TOP_K, parent_name="G(N)", stabilizer_name="G(N-1)",
        parent_hash=weights_hash(root / "parent"), stabilizer_hash=weights_hash(root / "stabilizer"),
    )
    return {
        "params": params, "vocab": len(tok), "examples": n_examples, "cache_tokens": info.tokens,
        "cache_seconds": info.seconds, "seconds": time.perf_counter() - start,
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }


# ------------------------------------------------------------------------- ours


def make_spec(root: Path, *, candidate: str, seed: int, branch: str, steps: int, threads: int,
              out_dir: Path, device: str = "cpu") -> Any:
    from adapters.training.spec import Distill, Lora, TrainSpec
    from evo_core.values import BudgetLimits

    index = json.loads((root / "cache.safetensors.json").read_text())
    return TrainSpec(
        candidate=candidate, window=1, gen=1, branch=branch, seed=seed, strategy="uniform",
        parent="G(N)", parent_dir=str(root / "parent"),
        stabilizer="G(N-1)", stabilizer_dir=str(root / "stabilizer"),
        cache_path=str(root / "cache.safetensors"),
        example_ids=tuple(index["ids"]), new_count=len(index["ids"]), data_delta_hash="bench",
        out_dir=str(out_dir),
        budget=BudgetLimits(max_steps=steps, max_walltime_minutes=60.0, max_gpu_memory_gb=1024.0,
                            max_tokens_processed=10**12, max_disk_gb=100.0),
        distill=Distill(alpha=ALPHA, beta=BETA, temperature=TEMPERATURE, stabilizer_weight=STABILIZER_WEIGHT),
        lora=Lora(r=LORA_R, alpha=LORA_ALPHA, dropout=LORA_DROPOUT, target_modules=TARGETS),
        steps=steps, batch_size=BATCH, learning_rate=LR, device=device, threads=threads,
        parent_hash=index["primary"]["blake3"], stabilizer_hash=index["stabilizer"]["blake3"],
    )


def ours_rep(root: Path, rep: int, steps: int, warmup: int, threads: int, device: str = "cpu") -> dict[str, Any]:
    """One run of ``adapters.training.trainer.train``: a fresh LoRA student, the shared cache."""
    from adapters.training.trainer import train

    marks: list[tuple[float, int]] = []
    with tempfile.TemporaryDirectory(prefix="ours-", dir=root) as tmp:
        spec = make_spec(root, candidate=f"ours-{rep}", seed=424242 + rep, branch="a",
                         steps=steps, threads=threads, out_dir=Path(tmp) / "c", device=device)
        result = train(spec, lambda info: marks.append((time.perf_counter(), int(info["tokens"]))))
    if result.status != "finished":
        raise RuntimeError(f"our trainer {result.status}: {result.reason or result.resource}")
    return {**_steady(marks, warmup), "tokens_per_step": marks[-1][1] / len(marks), "steps": len(marks)}


# ------------------------------------------------------------------------- TRL GKD


class Gkd:
    """TRL's GKDTrainer on the same model, data, batch, LoRA and steps; imports paid once."""

    def __init__(self, root: Path, threads: int) -> None:
        import torch
        from datasets import Dataset  # type: ignore[import-untyped]
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
        from trl.experimental.gkd import GKDConfig, GKDTrainer  # noqa: F401 (import cost paid here)

        hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        torch.set_num_threads(threads)  # the Trainer does not set threads: the same count as ours
        self.root = root
        examples = json.loads((root / "examples.json").read_text())
        self.dataset = Dataset.from_list([{"messages": e["messages"]} for e in examples])
        self.tok = AutoTokenizer.from_pretrained(str(root / "parent"), local_files_only=True)
        assert self.tok.pad_token_id is not None and self.tok.chat_template

    def rep(self, rep: int, steps: int, warmup: int) -> dict[str, Any]:
        import torch
        from peft import LoraConfig
        from transformers import AutoModelForCausalLM, TrainerCallback
        from trl.experimental.gkd import GKDConfig, GKDTrainer

        class Clock(TrainerCallback):
            def __init__(self) -> None:
                self.marks: list[tuple[float, int]] = []

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                self.marks.append((time.perf_counter(), int(state.num_input_tokens_seen)))

        with tempfile.TemporaryDirectory(prefix="gkd-", dir=self.root) as tmp:
            load: dict[str, Any] = dict(local_files_only=True, dtype=torch.float32)
            student = AutoModelForCausalLM.from_pretrained(str(self.root / "parent"), **load)
            teacher = AutoModelForCausalLM.from_pretrained(str(self.root / "parent"), **load)
            args = GKDConfig(
                output_dir=tmp, max_steps=steps, per_device_train_batch_size=BATCH,
                gradient_accumulation_steps=1, learning_rate=LR, lr_scheduler_type="constant",
                optim="adamw_torch", warmup_steps=0, max_length=SEQ,
                lmbda=0.0, beta=BETA, temperature=TEMPERATURE, seq_kd=False,
                bf16=False, fp16=False, gradient_checkpointing=False, use_cpu=True,
                include_num_input_tokens_seen="non_padding",
                logging_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True,
                dataloader_num_workers=0, dataloader_pin_memory=False, seed=424242 + rep,
            )
            peft_config = LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=LORA_DROPOUT,
                                     target_modules=list(TARGETS), task_type="CAUSAL_LM")
            clock = Clock()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                trainer = GKDTrainer(model=student, teacher_model=teacher, args=args,
                                     train_dataset=self.dataset, processing_class=self.tok,
                                     peft_config=peft_config, callbacks=[clock])
                trainer.train()
            trained: Any = trainer.model
            trainable = sum(p.numel() for p in trained.parameters() if p.requires_grad)
        if len(clock.marks) != steps:
            raise RuntimeError(f"GKDTrainer ran {len(clock.marks)} steps, not {steps}")
        return {**_steady(clock.marks, warmup), "tokens_per_step": clock.marks[-1][1] / steps,
                "steps": steps, "trainable": trainable}


# ------------------------------------------------------------------------- the pool


def pool_rep(root: Path, rep: int, steps: int, candidates: int) -> dict[str, Any]:
    """The wall time of one window of ``candidates`` workers through ``run_pool``."""
    from adapters.training.pool import run_pool, threads_per_worker

    threads = threads_per_worker(candidates)
    with tempfile.TemporaryDirectory(prefix="pool-", dir=root) as tmp:
        specs = [
            make_spec(root, candidate=f"w{rep}-{c}", seed=424242 + c, branch="abcdefgh"[c],
                      steps=steps, threads=threads, out_dir=Path(tmp) / f"c{c}")
            for c in range(candidates)
        ]
        t = time.perf_counter()
        results = run_pool(specs)
        wall = time.perf_counter() - t
    bad = [r for r in results.values() if r.status != "finished"]
    if bad:
        raise RuntimeError(f"candidate {bad[0].candidate} {bad[0].status}: {bad[0].reason}")
    return {"wall": wall, "threads": threads, "candidates": candidates,
            "cores": len(os.sched_getaffinity(0))}


# ------------------------------------------------------------------------- the server loop

MARK = "@@bench "  # result lines; anything else a library prints on stdout is not ours


def _emit_line(data: dict[str, Any]) -> None:
    sys.stdout.write(MARK + json.dumps(data) + "\n")
    sys.stdout.flush()


def serve(side: str, root: Path, threads: int, device: str = "cpu") -> None:
    """Pay the imports once, say ``ready``, then run one repetition per stdin line
    (``<rep> <steps> <warmup-or-candidates>``) and answer it with one result line."""
    runner: Any = None
    try:
        if side == "ours":
            from adapters.training.trainer import train  # noqa: F401 (import cost paid here)
            import peft, transformers  # noqa: F401,E401
        elif side == "gkd":
            runner = Gkd(root, threads)
        elif side == "pool":
            from adapters.training.pool import run_pool  # noqa: F401
        _emit_line({"ready": True})
    except Exception as exc:  # noqa: BLE001
        _emit_line({"error": f"{type(exc).__name__}: {exc}"})
        return
    for line in sys.stdin:
        rep, steps, extra = (int(x) for x in line.split())
        try:
            if side == "ours":
                out = ours_rep(root, rep, steps, extra, threads, device)
            elif side == "gkd":
                out = runner.rep(rep, steps, extra)
            else:
                out = pool_rep(root, rep, steps, extra)
        except Exception as exc:  # noqa: BLE001
            out = {"error": " ".join(f"{type(exc).__name__}: {exc}".split())[:500]}
        _emit_line(out)


def main(argv: list[str]) -> None:
    cmd, root = argv[0], Path(argv[1])
    if cmd == "fixture":
        _emit_line(build_fixture(root, int(argv[2])))
    elif cmd == "serve":
        serve(argv[2], root, int(argv[3]), *argv[4:5])
    else:
        raise SystemExit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
