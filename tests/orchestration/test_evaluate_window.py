"""Evaluate, rank, freeze and conclude a trained window on the demo model (real probes through
llama.cpp, real archives), and the order the ledger enforces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.data import demo_world
from adapters.data.conversations import encode
from adapters.freeze.archive import TEN
from evo_core.config import EvoConfig, TrainConfig, render_config

PERIOD = 2500  # one era of the demo world: new facts to learn, old ones to keep
CONFIG = EvoConfig(  # the mechanics of evaluation, not learning (the e2e test learns): few steps
    evo_period_cycles=PERIOD,
    train=TrainConfig(steps=20, warmup_steps=5, new_per_branch=60, replay_size=30),
)


def evo(home: Path, *args: str) -> int:
    return main(["--home", str(home), *args])


def ledger_events(home: Path) -> list[dict[str, object]]:
    return [json.loads(line)["event"] for line in (home / "ledger.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="session")
def at_window(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("at-window") / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    (home / "config.toml").write_text(render_config(CONFIG))
    feed = home.parent / "feed.jsonl"
    feed.write_bytes(b"".join(encode(c) + b"\n" for c in demo_world.conversations(1, PERIOD, seed=0, per_1000_cycles=200)))
    assert evo(home, "ingest", str(feed)) == 0
    assert evo(home, "heartbeat", "--count", str(PERIOD)) == 0
    return home


@pytest.fixture(scope="session")
def trained(at_window: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("trained") / "home"
    shutil.copytree(at_window, home, symlinks=True)
    assert evo(home, "train", "--json") == 0
    return home


@pytest.fixture
def home(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(trained, copy, symlinks=True)
    return copy


def test_a_trained_window_is_evaluated_ranked_frozen_and_concluded(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert evo(home, "evaluate") == 0
    events = ledger_events(home)
    kinds = [e["type"] for e in events]
    assert kinds.count("BaselineEvaluated") == 1 and kinds.count("GateEvaluated") == 3
    assert kinds.count("CandidatesRanked") == 1 and kinds.count("CandidateFrozen") == 3
    baseline = next(e for e in events if e["type"] == "BaselineEvaluated")
    assert baseline["metrics"]["tone_drift"] == 0.0  # HEAD against itself
    gates = {e["candidate"]: e for e in events if e["type"] == "GateEvaluated"}
    for frozen in (e for e in events if e["type"] == "CandidateFrozen"):
        folder = home / "models" / str(frozen["archive"])
        assert {p.name for p in folder.iterdir()} >= set(TEN)
        status = (folder / "STATUS.txt").read_text().strip()
        assert status == frozen["status"]
        assert (status == "PASS") == gates[frozen["candidate"]]["passed"]
    passing = [g for g in gates.values() if g["passed"] and g["score"] > baseline["score"]]
    if passing:
        proposed = next(e for e in events if e["type"] == "Proposed")
        best = max(passing, key=lambda g: g["score"])
        assert proposed["proposal"]["candidate"] == best["candidate"]
        document = json.loads((home / "models" / "PROMOTION_PROPOSAL.json").read_text())
        assert document["proposal_hash"] == proposed["proposal_hash"]
    else:
        assert kinds[-1] == "NoPromotion"
    capsys.readouterr()
    assert evo(home, "verify", "--deep") == 0
    assert evo(home, "evaluate") == 1  # concluded: nothing is evaluated twice
    assert "no evolution window is open" in capsys.readouterr().err


def test_evaluation_waits_for_training(at_window: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    shutil.copytree(at_window, home, symlinks=True)
    before = (home / "ledger.jsonl").read_bytes()
    assert evo(home, "evaluate") == 1
    err = capsys.readouterr().err
    assert "not ready to evaluate" in err and "evo train" in err
    assert (home / "ledger.jsonl").read_bytes() == before
    assert not (home / "data" / "probes").exists()  # refused before anything was written
