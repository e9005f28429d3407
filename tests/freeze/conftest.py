"""Freeze fixtures: candidates in every end state (from the pure core's Driver), fake work
folders of small files, and the CLI's workspace fixtures (``evo``, ``driver``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.runtime.workspace import Workspace
from evo_core import commands as cmd
from evo_core.state import Candidate, State
from tests.cli.conftest import driver, evo  # noqa: F401  (fixtures)
from tests.core.helpers import BAD_RECALL_LAWS, BASELINE, GOOD, Driver, Outcome

__all__ = ["driver", "evo"]


def ranked_window(outcomes: list[Outcome], d: Driver | None = None) -> Driver:
    """A window trained, evaluated and ranked: its candidates are ready to freeze."""
    if d is None:
        d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=d.config))
    d.do(cmd.RecordBaseline(metrics=BASELINE, config=d.config))
    for cid, outcome in zip(d.candidates(), outcomes):
        d.train(cid, outcome)
    d.do(cmd.Rank())
    return d


def make_work(folder: Path, *, weights: bool = True) -> Path:
    """What a training worker leaves (spec.py), in small fake files."""
    folder.mkdir(parents=True)
    (folder / "train_args.json").write_text(json.dumps({"steps": 10, "learning_rate": 1e-4}))
    (folder / "evo_manifest.json").write_text(json.dumps({"evolution_request": {"gen_id": 1}}))
    (folder / "training.json").write_text(
        json.dumps({"steps": 10, "loss_start": 2.0, "loss_final": 1.5, "walltime_minutes": 0.5})
    )
    (folder / "data_ids.json").write_text(json.dumps(["c1", "c2"]))
    if weights:
        w = folder / "weights"
        w.mkdir()
        (w / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
        (w / "tokenizer.json").write_text(json.dumps({"model": {"vocab": {"a": 0}}}))
        (w / "model.safetensors").write_bytes(b"\x00fake weights" * 8)
        (folder / "adapter").mkdir()
        (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"lora" * 4)
        (folder / "model.gguf").write_bytes(b"GGUF" + bytes(range(64)))
        (folder / "export.json").write_text(
            json.dumps({"gguf": "model.gguf", "dtype": "f32", "bytes": 68, "blake3": "x",
                        "weights_hash": "y", "seconds": 0.1,
                        "parity": {"max_logit_diff": 1e-5, "greedy_agreement": 1.0, "passed": True,
                                   "tolerance": 1e-3, "prompts": 4, "tokenization_identical": True}})
        )
    return folder


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    home = tmp_path / "home"
    (home / "models" / "archive").mkdir(parents=True)
    return Workspace(home)


@pytest.fixture
def window_state() -> State:
    return ranked_window([GOOD, BAD_RECALL_LAWS, "breach"]).state


def by_branch(state: State, branch: str) -> Candidate:
    return next(c for c in state.window_candidates() if c.branch == branch)
