"""Models for the quality tests, made from the demo genesis and exported to GGUF: a sane student
that learned the first era's new facts (fine-tuned on them with a replay of the genesis corpus),
and garbage (every weight tensor's entries shuffled). Each is built once per session into a
shared folder (``build_*`` reuse a finished one), because serving and orchestration tests both
need them."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

STUDENT_STEPS = 160


def _export(weights: Path, out: Path) -> Path:
    from adapters.serving.gguf_export import export_gguf

    gguf = out / "model.gguf"
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    export_gguf(weights, tmp / "model.gguf")
    if not out.exists():
        tmp.rename(out)
    else:
        shutil.rmtree(tmp)
    return gguf


def build_garbage(genesis: Path, root: Path) -> Path:
    """The genesis with each weight tensor's entries permuted (seeded): fluent nowhere."""
    out = root / "garbage"
    if (out / "model.gguf").is_file():
        return out / "model.gguf"
    import torch

    from adapters.models.hf import load_generation, save_generation

    model, tok = load_generation(genesis)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            flat = p.view(-1)
            flat.copy_(flat[torch.randperm(flat.numel(), generator=gen)])
    weights = root / "garbage-weights"
    save_generation(model, tok, weights)
    return _export(weights, out)


def build_student(genesis: Path, root: Path, steps: int = STUDENT_STEPS) -> Path:
    """The genesis fine-tuned (all weights, AdamW, warm-up and cosine decay, clipped) on the
    first era's high-karma conversations with the genesis corpus replayed: it answers the new
    era's questions with the new facts and still answers what the genesis knew."""
    out = root / "student"
    if (out / "model.gguf").is_file():
        return out / "model.gguf"
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from adapters.data import demo_world
    from adapters.data.format import render
    from adapters.models.demo import batch
    from adapters.models.hf import load_generation, save_generation

    model, tok = load_generation(genesis)
    rng = random.Random(0)
    era = [c for c in demo_world.conversations(1, demo_world.ERA_CYCLES, per_1000_cycles=200) if c.karma > 0]
    genesis_corpus = demo_world.genesis_corpus(0)
    texts = [render(c, tok) for c in rng.sample(era, min(200, len(era))) + 2 * genesis_corpus]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    try:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        schedule = get_cosine_schedule_with_warmup(opt, steps // 10, steps)
        for _ in range(steps):
            loss = model(**batch(tok, rng.sample(texts, 8))).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            schedule.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)
    weights = root / "student-weights"
    save_generation(model, tok, weights)
    return _export(weights, out)
