"""A window on a user's model of another family: ``evo init --base-model`` on a tiny Llama 3.1
(a chat template that writes BOS itself, llama3 RoPE), Qwen2
(tied embeddings, attention biases, byte-level Qwen2 tokenizer and ChatML) and Phi-3 (fused
projections the LoRA targets stand for, SentencePiece tokenizer), the agent's conversations
ingested, probes written, the window's students trained through the real pool on the family's
chat template, exported to GGUF and parity-checked, evaluated through llama.cpp, ranked, and the
best one frozen or the window concluded (random weights learn little: the gates decide)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.data import demo_world
from adapters.data.conversations import encode
from adapters.evaluation.probes import build_demo_probes, write_probes
from adapters.models.tiny import build_tiny
from evo_core.config import EvoConfig, TrainConfig, render_config

PERIOD = 200
CONFIG = EvoConfig(
    evo_period_cycles=PERIOD,
    train=TrainConfig(steps=6, warmup_steps=1, batch_size=4, max_seq_len=64, new_per_branch=16, replay_size=0),
)


def evo(home: Path, *args: str) -> int:
    return main(["--home", str(home), *args])


def ledger_events(home: Path) -> list[dict[str, object]]:
    return [json.loads(line)["event"] for line in (home / "ledger.jsonl").read_bytes().splitlines()]


@pytest.mark.parametrize("family", ["qwen2", "phi3", "llama3"])
def test_a_window_on_another_family_trains_exports_evaluates_and_ranks(
    family: str, tmp_path: Path
) -> None:
    base = build_tiny(family, tmp_path / "base")
    home = tmp_path / "home"
    assert evo(home, "init", "--base-model", str(base)) == 0
    (home / "config.toml").write_text(render_config(CONFIG))
    write_probes(home, build_demo_probes(PERIOD, since_cycle=0))  # the demo world's questions
    feed = tmp_path / "feed.jsonl"
    convs = demo_world.conversations(1, PERIOD, seed=0, per_1000_cycles=300)
    feed.write_bytes(b"".join(encode(c) + b"\n" for c in convs))
    assert evo(home, "ingest", str(feed)) == 0
    assert evo(home, "heartbeat", "--count", str(PERIOD)) == 0
    assert evo(home, "train", "--json") == 0
    assert evo(home, "evaluate", "--json") == 0

    events = ledger_events(home)
    trained = [str(e["candidate"]) for e in events if e["type"] == "TrainingFinished"]
    assert len(trained) == CONFIG.max_concurrent_experiments
    for candidate in trained:  # each student's GGUF passed its parity check before evaluation
        record = json.loads((home / "models" / "archive" / candidate / "export.json").read_text())
        assert record["parity"]["passed"] and record["parity"]["tokenization_identical"]
    gated = {str(e["candidate"]) for e in events if e["type"] == "GateEvaluated"}
    assert gated == set(trained)
    assert sum(e["type"] == "CandidatesRanked" for e in events) == 1
    assert events[-1]["type"] in ("NoPromotion", "Proposed")  # random weights: the gates decide
