"""The frozen archive: ten artifacts, hashes.csv, read-only, written once, never half-written."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from pathlib import Path

import pytest

from adapters.freeze import TEN, ArchiveExists, freeze, verify_archive
from adapters.freeze import archive as archive_mod
from adapters.hashing import hash_file, hash_tree
from adapters.runtime.workspace import Workspace
from evo_core.state import State
from evo_core.window import verdict
from tests.core.helpers import BASELINE, GOOD
from tests.freeze.conftest import by_branch, make_work


def _freeze(ws: Workspace, state: State, branch: str, work: Path, **kw: object) -> archive_mod.FrozenArchive:
    c = by_branch(state, branch)
    return freeze(ws, c, window=state.window, head_metrics=BASELINE, work_dir=work, **kw)  # type: ignore[arg-type]


def test_ten_artifacts_and_a_correct_hashes_csv(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "a")
    fa = _freeze(ws, window_state, "a", make_work(tmp_path / "work"))
    assert fa.path == ws.archive / c.id and fa.archive == f"archive/{c.id}"
    for name in TEN:
        assert (fa.path / name).is_file(), name
    assert (fa.path / "weights" / "model.safetensors").is_file()
    assert (fa.path / "adapter" / "adapter_model.safetensors").is_file()
    assert (fa.path / "data_ids.json").is_file()  # the next window's replay reads it
    rows = list(csv.DictReader(io.StringIO((fa.path / "hashes.csv").read_text())))
    listed = {r["path"]: r for r in rows}
    files = {p.relative_to(fa.path).as_posix() for p in fa.path.rglob("*") if p.is_file()}
    assert set(listed) == files - {"hashes.csv"}
    for rel, row in listed.items():
        assert row["blake3"] == hash_file(fa.path / rel)
        assert int(row["bytes"]) == (fa.path / rel).stat().st_size
    assert fa.archive_hash == hash_tree(fa.path)
    assert fa.manifest_hash == hash_file(fa.path / "evo_manifest.json")
    assert fa.model_hash  # the weights hash, as genesis records it
    assert verify_archive(fa.path, fa.archive_hash) == []


def test_metrics_json_has_the_specs_shape_and_the_export_parity(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    fa = _freeze(ws, window_state, "a", make_work(tmp_path / "work"))
    m = json.loads((fa.path / "metrics.json").read_text())
    assert {"gen", "branch", "parent", "training", "eval", "law_violations", "budget_used", "gates", "status"} <= set(m)
    assert m["gen"] == 1 and m["branch"] == "a"
    assert m["training"] == {"steps": 10, "loss_start": 2.0, "loss_final": 1.5, "walltime_minutes": 0.5}
    assert m["eval"] == {"recall": GOOD.recall, "generalize": GOOD.generalize, "tone_drift": GOOD.tone_drift}
    assert m["law_violations"] == 0
    assert set(m["gates"]) == {"recall_ok", "generalize_ok", "tone_ok", "laws_ok", "budget_ok"}
    assert all(m["gates"].values())
    assert m["status"] == "PASS" == (fa.path / "STATUS.txt").read_text().strip()
    assert m["export"]["parity"]["passed"] is True


def test_eval_md_and_model_card(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "b")  # recall and laws gates fail
    fa = _freeze(ws, window_state, "b", make_work(tmp_path / "work"))
    status = (fa.path / "STATUS.txt").read_text().strip()
    assert status == verdict(c) and status.startswith("FAIL - ")
    text = (fa.path / "EVAL.md").read_text()
    assert "## Metrics vs HEAD" in text and "](metrics.png)" in text and (fa.path / "metrics.png").is_file()
    for g in c.gates:  # each gate with its threshold and margin
        assert f"| {g.name} |" in text and f"{g.threshold:.4f}" in text and f"{g.margin:+.4f}" in text
    card = (fa.path / "MODEL_CARD.md").read_text()
    front = card.split("---\n")[1]
    assert "base_model:" not in front  # a generation's name is no Hub id (tests/freeze/test_model_card.py)
    assert f"parents:\n- {c.parent}" in front and "model-index:" in front
    assert "- type: recall\n      value: 0.5\n" in front


def test_read_only_after_freeze(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    fa = _freeze(ws, window_state, "a", make_work(tmp_path / "work"))
    writable = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
    for p in [fa.path, *fa.path.rglob("*")]:
        assert not p.stat().st_mode & writable, p


def test_an_archive_is_written_once(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    work = make_work(tmp_path / "work")
    fa = _freeze(ws, window_state, "a", work)
    before = hash_tree(fa.path)
    with pytest.raises(ArchiveExists, match="written once"):
        _freeze(ws, window_state, "a", work)
    assert hash_tree(fa.path) == before
    assert [p.name for p in ws.archive.iterdir()] == [fa.path.name]


def test_a_modified_byte_fails_verify_archive(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    fa = _freeze(ws, window_state, "a", make_work(tmp_path / "work"))
    target = fa.path / "weights" / "model.safetensors"
    os.chmod(target.parent, 0o755)
    os.chmod(target, 0o644)
    data = bytearray(target.read_bytes())
    data[3] ^= 1
    target.write_bytes(bytes(data))
    problems = verify_archive(fa.path, fa.archive_hash)
    assert any("does not match the recorded" in p for p in problems)
    assert any("weights/model.safetensors does not match hashes.csv" in p for p in problems)


def test_an_added_or_removed_file_fails_verify_archive(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    fa = _freeze(ws, window_state, "a", make_work(tmp_path / "work"))
    os.chmod(fa.path, 0o755)
    (fa.path / "extra.txt").write_text("sneaked in")
    os.remove(fa.path / "EVAL.md")
    problems = verify_archive(fa.path, fa.archive_hash)
    assert any("extra.txt is not listed" in p for p in problems)
    assert any("EVAL.md is listed in hashes.csv but missing" in p for p in problems)
    assert verify_archive(ws.archive / "nowhere", fa.archive_hash) == [f"{ws.archive / 'nowhere'}: archive folder missing"]


@pytest.mark.parametrize("victim", ["EVAL.md", "hashes.csv", "STATUS.txt"])
def test_a_crash_in_the_middle_leaves_no_folder_under_the_final_name(
    ws: Workspace, window_state: State, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, victim: str
) -> None:
    from adapters.runtime.workspace import write_atomic as real

    def crashing(path: Path, data: bytes | str, **kw: object) -> None:
        if path.name == victim:
            raise OSError("disk on fire")
        real(path, data)

    monkeypatch.setattr("adapters.freeze.archive.write_atomic", crashing)
    work = make_work(tmp_path / "work")
    with pytest.raises(OSError, match="disk on fire"):
        _freeze(ws, window_state, "a", work)
    assert list(ws.archive.iterdir()) == []  # neither the archive nor its temp folder
    monkeypatch.setattr("adapters.freeze.archive.write_atomic", real)
    fa = _freeze(ws, window_state, "a", work)  # and the freeze can be retried
    assert verify_archive(fa.path, fa.archive_hash) == []


def test_a_crash_at_the_rename_leaves_nothing(
    ws: Workspace, window_state: State, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(src: object, dst: object) -> None:
        raise OSError("killed")

    monkeypatch.setattr("adapters.freeze.archive.os.rename", boom)
    with pytest.raises(OSError, match="killed"):
        _freeze(ws, window_state, "a", make_work(tmp_path / "work"))
    assert list(ws.archive.iterdir()) == []


def test_a_dead_freezes_temp_folder_is_removed_by_the_next(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "a")
    leftover = ws.archive / f".{c.id}.freezing-999999999"  # no such process
    (leftover / "weights").mkdir(parents=True)
    (leftover / "weights" / "half.bin").write_bytes(b"half")
    os.chmod(leftover / "weights", 0o555)
    fa = _freeze(ws, window_state, "a", make_work(tmp_path / "work"))
    assert sorted(p.name for p in ws.archive.iterdir()) == [fa.path.name]


def test_a_budget_breach_is_archived_with_its_reason(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    c = by_branch(window_state, "c")
    fa = _freeze(ws, window_state, "c", make_work(tmp_path / "work", weights=False))
    assert (fa.path / "STATUS.txt").read_text() == "FAIL - budget: steps\n"
    m = json.loads((fa.path / "metrics.json").read_text())
    assert m["status"] == "FAIL - budget: steps" and m["gates"]["budget_ok"] is False
    assert m["eval"] == {"recall": None, "generalize": None, "tone_drift": None}
    assert "model.gguf" in m["missing"] and not (fa.path / "model.gguf").exists()
    text = (fa.path / "EVAL.md").read_text()
    assert "## Missing artifacts" in text and "- model.gguf" in text
    assert fa.model_hash == "" and fa.manifest_hash == hash_file(fa.path / "evo_manifest.json")
    assert verify_archive(fa.path, fa.archive_hash) == []
    assert c.budget_used is not None and m["budget_used"]["steps"] == c.budget_used.steps


def test_an_empty_work_folder_still_freezes(ws: Workspace, window_state: State, tmp_path: Path) -> None:
    (tmp_path / "nothing").mkdir()
    fa = _freeze(ws, window_state, "c", tmp_path / "nothing")
    for name in ("metrics.json", "hashes.csv", "EVAL.md", "MODEL_CARD.md", "STATUS.txt"):
        assert (fa.path / name).is_file()
    assert verify_archive(fa.path, fa.archive_hash) == []


def test_bounded_gates_leave_their_evidence_in_metrics_json_and_eval_md(ws: Workspace, tmp_path: Path) -> None:
    from evo_core import commands as cmd
    from evo_core.values import Metrics
    from tests.core.helpers import Driver

    def measured(recall: str, generalize: str) -> Metrics:
        return Metrics(recall=recall.count("1") / len(recall), generalize=generalize.count("1") / len(generalize),
                          tone_drift=0.02, law_violations=0, recall_outcomes=recall,
                          generalize_outcomes=generalize, tone_drifts=(0.01, 0.03))

    head = measured("1" * 30, "0" * 30)
    d = Driver().genesis()
    d.open_window()
    d.do(cmd.SpawnCandidates(config=d.config))
    d.do(cmd.RecordBaseline(metrics=head, config=d.config))
    a, b, c = d.candidates()
    d.train(a, measured("1" * 29 + "0", "1" * 16 + "0" * 14))
    d.train(b, measured("1" * 30, "1" + "0" * 29))  # one lucky answer
    d.train(c, "fail")
    d.do(cmd.Rank())
    state = d.state
    lucky = state.candidates[b]
    fa = freeze(ws, lucky, window=state.window, head_metrics=head, work_dir=make_work(tmp_path / "work"))
    m = json.loads((fa.path / "metrics.json").read_text())
    gates = {g["name"]: g for g in m["gate_results"]}
    assert m["gate_confidence"] == 0.95
    assert (gates["generalize"]["method"], gates["generalize"]["n_items"], gates["generalize"]["wins"]) == (
        "tango-paired", 30, 1)
    assert gates["generalize"]["bound"] < gates["generalize"]["threshold"] == d.config.gates.delta
    assert m["probe_items"]["generalize"] == {"items": 30, "right": 1, "outcomes": "1" + "0" * 29,
                                              "head_right": 0, "head_outcomes": "0" * 30}
    assert m["probe_items"]["tone"] == {"prompts": 2, "drifts": [0.01, 0.03]}
    assert m["head"]["recall_outcomes"] == "1" * 30
    text = (fa.path / "EVAL.md").read_text()
    assert "one-sided 95% bound" in text and "| **FAIL** |" in text
    assert "+0.0333 vs HEAD (1 more of 30: 1 won, 0 lost), 95% lower bound -0.0521 < delta 0.02" in text
    assert "0.0333 (1/30)" in text and "Tone drift per prompt: 0.0100, 0.0300." in text
