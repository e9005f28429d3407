"""`evo ingest`, `evo init --demo` and `evo init --base-model DIR`: output, exit codes, and
nothing written when the input is bad."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from adapters.data import demo_world as w
from adapters.data.conversations import encode, load
from adapters.models.hf import load_generation, weights_hash
from adapters.runtime.workspace import Workspace
from tests.cli.conftest import Evo
from tests.fixtures_models import GENESIS


def jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def demo_lines(first: int, last: int) -> list[str]:
    return [encode(c).decode() for c in w.conversations(first, last, seed=0)]


# ---------------------------------------------------------------- ingest


def test_ingest_adds_and_counts_duplicates(evo: Evo, tmp_path: Path) -> None:
    path = jsonl(tmp_path / "a.jsonl", demo_lines(1, 1000))
    r = evo("ingest", str(path))
    assert r.code == 0 and r.out == "added 20, duplicates 0 (store: 20 conversations)\n"
    more = jsonl(tmp_path / "b.jsonl", demo_lines(501, 1500))
    r = evo("ingest", "--json", str(more))
    assert r.code == 0 and json.loads(r.out) == {
        "added": 10, "duplicates": 10, "total": 30, "format": "evo", "dropped": {},
    }
    assert [c.id for c in load(Workspace(evo.home))] == [c.id for c in w.conversations(1, 1500, seed=0)]


def test_ingest_of_a_bad_file_exits_1_with_a_summary_then_file_line_reasons(evo: Evo, tmp_path: Path) -> None:
    good = demo_lines(1, 200)
    path = jsonl(tmp_path / "bad.jsonl", [good[0], "{oops", good[1], '{"id":"x","cycle":-3,"karma":0,"messages":[]}'])
    r = evo("ingest", str(path))
    assert r.code == 1 and r.out == ""
    lines = r.err.splitlines()
    assert lines[0] == f"evo: error: {path}: 2 bad lines; nothing ingested"
    assert lines[1].startswith(f"  {path}:2: invalid JSON")
    assert lines[2].startswith(f"  {path}:4: ") and "$.cycle" in lines[2]
    assert load(Workspace(evo.home)) == []


def test_ingest_of_a_missing_file_or_outside_a_workspace_is_one_line(evo: Evo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = evo("ingest", str(tmp_path / "nope.jsonl"))
    assert r.code == 1 and r.err.count("\n") == 1 and "nope.jsonl" in r.err
    path = jsonl(tmp_path / "a.jsonl", demo_lines(1, 100))
    r = Evo(tmp_path / "nowhere", capsys)("ingest", str(path))
    assert r.code == 1 and "evo init" in r.err and r.err.count("\n") == 1
    assert evo("ingest").code == 2  # the file is required


# ---------------------------------------------------------------- init --demo


def test_init_demo_registers_a_real_genesis_and_ingests_its_conversations(
    demo_workspace: Path, demo_genesis: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evo = Evo(demo_workspace, capsys)
    status = json.loads(evo("status", "--json").out)
    assert status["head"] == GENESIS and status["phase"] == "idle"
    assert evo("verify").code == 0
    registered = json.loads(evo("log", "--json", "--type", "GenerationRegistered").out.splitlines()[0])["event"]
    assert registered["source"] == "demo"
    assert registered["model_hash"] == weights_hash(demo_genesis / "weights")
    stored = load(Workspace(demo_workspace))
    assert sorted(c.id for c in stored) == json.loads((demo_genesis / "data_ids.json").read_text())
    assert all(c.cycle == 0 for c in stored)
    assert (demo_workspace / "models" / "Luna-GHEAD" / "weights" / "model.safetensors").is_file()


def test_init_demo_writes_the_demo_worlds_laws_and_a_plain_init_none(demo_workspace: Path, evo: Evo) -> None:
    """The laws gate of the demo reads config.toml's [[laws]]: the demo world's, unchanged."""
    laws = Workspace(demo_workspace).load_config().laws
    assert laws == w.law_configs() and [law.name for law in laws] == [law.name for law in w.LAWS]
    assert "[[laws]]" in (demo_workspace / "config.toml").read_text()
    plain = (evo.home / "config.toml").read_text()
    assert Workspace(evo.home).load_config().laws == ()
    assert "# [[laws]]" in plain and not any(line.startswith("[[laws]]") for line in plain.splitlines())


def test_init_demo_and_base_model_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = Evo(tmp_path / "h", capsys)("init", "--demo", "--base-model", str(tmp_path))
    assert r.code == 2 and "not allowed with" in r.err
    assert not (tmp_path / "h").exists()


# ---------------------------------------------------------------- init --base-model


def test_init_base_model_copies_a_local_hf_folder_as_genesis(
    demo_genesis: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "my-llama"
    shutil.copytree(demo_genesis / "weights", base)
    evo = Evo(tmp_path / "home", capsys)
    r = evo("init", "--base-model", str(base))
    assert r.code == 0 and f"genesis model: {base.resolve()}" in r.out
    registered = json.loads(evo("log", "--json", "--type", "GenerationRegistered").out.splitlines()[0])["event"]
    copied = tmp_path / "home" / "models" / "archive" / GENESIS
    assert registered["source"] == str(base.resolve())
    assert registered["model_hash"] == weights_hash(base) == weights_hash(copied / "weights")
    assert sorted(p.name for p in (copied / "weights").iterdir()) == sorted(p.name for p in base.iterdir())
    assert json.loads((copied / "data_ids.json").read_text()) == []
    model, tokenizer = load_generation(copied)
    assert type(model).__name__ == "LlamaForCausalLM" and len(tokenizer) == 512
    assert evo("verify").code == 0


def test_a_bad_base_model_is_refused_in_one_line_and_leaves_no_workspace(
    demo_genesis: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    no_weights = tmp_path / "no-weights"
    shutil.copytree(demo_genesis / "weights", no_weights)
    (no_weights / "model.safetensors").unlink()
    (tmp_path / "empty").mkdir()
    cases = {tmp_path / "missing": "not a folder", tmp_path / "empty": "no config.json", no_weights: "no weights"}
    for i, (folder, reason) in enumerate(cases.items()):
        home = tmp_path / f"home{i}"
        r = Evo(home, capsys)("init", "--base-model", str(folder))
        assert r.code == 1 and r.err.count("\n") == 1 and reason in r.err and str(folder) in r.err
        assert not home.exists()
