"""A whole window's training on the demo model: three real candidates in parallel processes,
ledger first, outputs on disk; and budgets that really stop them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Iterator

import msgspec
import pytest

from adapters.cli import main
from adapters.data import demo_world
from adapters.data.conversations import encode
from evo_core.config import BudgetConfig, EvoConfig, TrainConfig, render_config

PERIOD = 100
CONFIG = EvoConfig(
    evo_period_cycles=PERIOD,
    train=TrainConfig(steps=12, batch_size=4, max_seq_len=64, new_per_branch=24, replay_size=12),
)


def evo(home: Path, *args: str) -> int:
    return main(["--home", str(home), *args])


@pytest.fixture(scope="session")
def window_workspace(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared `evo init --demo` workspace, copied; the first window's conversations
    ingested and heartbeats up to the window."""
    home = tmp_path_factory.mktemp("window") / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    (home / "config.toml").write_text(render_config(CONFIG))
    convs = demo_world.conversations(1, PERIOD, seed=0, per_1000_cycles=1000)
    feed = home.parent / "conversations.jsonl"
    feed.write_bytes(b"".join(encode(c) + b"\n" for c in convs))
    assert evo(home, "ingest", str(feed)) == 0
    assert evo(home, "heartbeat", "--count", str(PERIOD)) == 0
    return home


@pytest.fixture
def home(window_workspace: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "home"
    shutil.copytree(window_workspace, copy, symlinks=True)
    yield copy


def events(home: Path, kind: str) -> list[dict[str, object]]:
    out = []
    for line in (home / "ledger.jsonl").read_bytes().splitlines():
        event = json.loads(line)["event"]
        if event["type"] == kind:
            out.append(event)
    return out


def test_a_window_trains_three_candidates_in_parallel_and_records_them(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert evo(home, "train", "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert sorted(r["status"] for r in results) == ["finished"] * 3
    spawned = events(home, "CandidateSpawned")
    assert [s["seed"] for s in spawned] == [424242, 424243, 424244]
    assert [s["strategy"] for s in spawned] == list(CONFIG.data_strategies)
    finished = events(home, "TrainingFinished")
    assert sorted(f["candidate"] for f in finished) == sorted(s["candidate"] for s in spawned)
    for f in finished:
        assert f["stats"]["steps"] == CONFIG.train.steps
        assert 0 < f["budget_used"]["tokens_processed"] <= CONFIG.budget.max_tokens_processed
        out = home / "work" / str(f["candidate"])
        for name in ("weights/config.json", "weights/model.safetensors", "weights/tokenizer.json", "model.gguf", "export.json",
                     "adapter", "train_args.json", "evo_manifest.json", "training.json", "data_ids.json"):
            assert (out / name).exists(), name
        manifest = json.loads((out / "evo_manifest.json").read_text())
        assert manifest["parents"]["primary_teacher"]["gen"] in ("Luna-G000-genesis", 0)
    # every branch trained on the same new data: one delta hash, and one shared teacher cache
    deltas = {json.loads((home / "work" / str(f["candidate"]) / "evo_manifest.json").read_text())["data"]["data_delta_blake3"] for f in finished}
    assert len(deltas) == 1
    assert len(list((home / "work" / "window-1").glob("teacher_cache*.safetensors"))) == 1
    assert evo(home, "verify") == 0
    capsys.readouterr()
    assert evo(home, "train") == 0  # nothing is trained twice
    assert "no candidate is due" in capsys.readouterr().out
    assert len(events(home, "TrainingStarted")) == 3


def test_a_budget_breach_stops_training_and_hard_fails_the_candidate(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tight = CONFIG.model_copy(update={"budget": BudgetConfig(max_steps=4)})
    (home / "config.toml").write_text(render_config(tight))
    assert evo(home, "train", "--json") == 0
    results = json.loads(capsys.readouterr().out)
    assert sorted(r["status"] for r in results) == ["breached"] * 3
    breaches = events(home, "BudgetBreached")
    assert len(breaches) == 3
    for b in breaches:
        assert (b["resource"], b["limit"], b["used"]) == ("steps", 4.0, 5.0)
    assert evo(home, "status", "--json") == 0
    status = msgspec.json.decode(capsys.readouterr().out)
    labels = [c["status"] for c in status["window"]["candidates"]]
    assert labels == ["FAIL - budget: steps"] * 3


def test_a_window_with_nothing_new_fails_its_candidates_with_the_reason(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (home / "data" / "conversations.jsonl").write_bytes(
        b"".join(encode(c) + b"\n" for c in demo_world.genesis_corpus(0)[:5])
    )
    assert evo(home, "train") == 0
    failed = events(home, "TrainingFailed")
    assert len(failed) == 3 and all("no new conversations" in str(f["reason"]) for f in failed)
