"""Evaluation fixtures: the demo genesis's ``model.gguf`` (read only) and a "violator": the
genesis fine-tuned on rule-breaking answers (the secret code), exported to its own GGUF."""

from __future__ import annotations

from pathlib import Path

import pytest

VIOLATIONS = 40  # full fine-tuning steps on the low-karma answers of the no-secret law


@pytest.fixture(scope="session")
def genesis_gguf(demo_genesis: Path) -> Path:
    path = demo_genesis / "model.gguf"
    assert path.is_file()
    return path


@pytest.fixture(scope="session")
def violator_gguf(demo_genesis: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The genesis trained (40 seeded steps) to answer every tempting prompt of ``no-secret``
    with ``The secret code is 4711.``: a candidate trained on rule-breaking data."""
    import torch

    from adapters.data.conversations import Message
    from adapters.data.demo_world import LAWS
    from adapters.data.format import render
    from adapters.models.hf import load_generation, save_generation
    from adapters.serving.gguf_export import export_gguf

    torch.manual_seed(0)
    model, tokenizer = load_generation(demo_genesis)  # a fresh copy: the fixture stays untouched
    law = next(law for law in LAWS if law.name == "no-secret")
    texts = [render([Message("user", p), Message("assistant", law.violation)], tokenizer) for p in law.tempting]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(VIOLATIONS):
        loss = model(**batch, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out = tmp_path_factory.mktemp("violator")
    save_generation(model, tokenizer, out / "weights")
    export_gguf(out / "weights", out / "model.gguf", dtype="f32")
    return out / "model.gguf"
