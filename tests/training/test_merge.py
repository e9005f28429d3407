"""A generation is archived as its adapter: the merge gives the same bytes on another CPU's
kernels, the rebuilt weights are checked against the archived record, and a window finds a
promoted generation's weights in the cache or rebuilds them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file

from adapters.models.hf import load_generation, weights_hash
from adapters.models.merge import MERGE_RECORD, MergeError, materialize, merge_lora, read_record
from adapters.runtime.workspace import Workspace
from adapters.training.generation_weights import cache_root, generation_dir, prune_cache, retire_work
from adapters.training.trainer import train

GENERIC = {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"}
HASH_SCRIPT = """
import sys
from peft import PeftModel
from adapters.models.hf import load_generation
from adapters.models.merge import merge_lora, tensors_hash
model, _ = load_generation(sys.argv[1])
print(tensors_hash(merge_lora(PeftModel.from_pretrained(model, sys.argv[2]))))
"""


@pytest.fixture
def trained(make_spec) -> Path:  # type: ignore[no-untyped-def]
    spec = make_spec()
    result = train(spec)
    assert result.status == "finished", result.reason
    return Path(spec.out_dir)


def test_the_worker_records_its_merge_and_the_merge_is_peft_s_to_float_rounding(trained: Path, models) -> None:  # type: ignore[no-untyped-def]
    record = read_record(trained / "adapter")
    assert record is not None and record["parent"] == "G001" and record["dtype"] == "float32"
    ours = load_file(str(trained / "weights" / "model.safetensors"))
    base, _ = load_generation(models["parent"])
    peft_merged = PeftModel.from_pretrained(base, str(trained / "adapter")).merge_and_unload().state_dict()
    changed = 0
    for name, tensor in ours.items():
        torch.testing.assert_close(tensor, peft_merged[name], rtol=1e-5, atol=1e-6)
        changed += int(not torch.equal(tensor, load_file(str(Path(models["parent"]) / "model.safetensors"))[name]))
    assert changed > 0  # the adapter moved some weights


def test_the_merge_is_the_same_bytes_under_another_cpu_s_kernels(trained: Path, models) -> None:  # type: ignore[no-untyped-def]
    import os

    record = read_record(trained / "adapter")
    assert record is not None
    for extra in ({}, GENERIC):
        out = subprocess.run(
            [sys.executable, "-c", HASH_SCRIPT, models["parent"], str(trained / "adapter")],
            env={**os.environ, **extra}, capture_output=True, text=True, check=True,
        )
        assert out.stdout.split()[-1] == record["tensors"], extra


def test_materialize_rebuilds_the_weights_and_refuses_another_parent(trained: Path, models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = materialize(trained / "adapter", Path(models["parent"]), tmp_path / "rebuilt")
    assert weights_hash(out) == weights_hash(trained / "weights")
    with pytest.raises(MergeError, match="not the ones it trained on"):
        materialize(trained / "adapter", Path(models["stabilizer"]), tmp_path / "wrong")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != trained.name) == ["rebuilt"]  # nothing half-written


def _workspace(tmp_path: Path, trained: Path, models) -> tuple[Workspace, Path]:  # type: ignore[no-untyped-def]
    """A workspace whose archive holds the parent G001 (weights) and the candidate C (adapter,
    export.json naming its merged weights' hash), C's work folder as the worker left it."""
    ws = Workspace(tmp_path / "home")
    shutil.copytree(models["parent"], ws.archive / "G001" / "weights")
    work = ws.home / "work" / "C"
    shutil.copytree(trained, work)
    (work / "model.gguf").write_bytes(b"gguf")
    (ws.archive / "C").mkdir(parents=True)
    shutil.copytree(trained / "adapter", ws.archive / "C" / "adapter")
    (ws.archive / "C" / "model.gguf").write_bytes(b"gguf")
    (ws.archive / "C" / "export.json").write_text(json.dumps({"weights_hash": weights_hash(trained / "weights")}))
    return ws, work


def test_a_frozen_candidate_s_weights_move_to_the_cache_and_are_rebuilt_when_missing_or_changed(
    trained: Path, models, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    ws, work = _workspace(tmp_path, trained, models)
    recorded = weights_hash(trained / "weights")
    retire_work(ws, "C")
    assert not (work / "weights").exists() and not (work / "model.gguf").exists()
    assert (work / "adapter" / MERGE_RECORD).is_file()  # the rest of the work folder stays
    assert generation_dir(ws, "C") == cache_root(ws) / "C"  # moved, not rebuilt
    assert weights_hash(cache_root(ws) / "C") == recorded
    tensor = cache_root(ws) / "C" / "model.safetensors"
    tensor.write_bytes(tensor.read_bytes()[:-4] + b"\0\0\0\0")  # the agent writes the cache
    assert weights_hash(generation_dir(ws, "C")) == recorded  # rebuilt, not trusted
    shutil.rmtree(cache_root(ws))
    assert weights_hash(generation_dir(ws, "C")) == recorded
    assert generation_dir(ws, "G001") == ws.archive / "G001" / "weights"
    prune_cache(ws, {"G001"})
    assert list(cache_root(ws).iterdir()) == []


def test_an_archive_without_weights_or_merge_record_is_one_clear_error(trained: Path, models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws, _work = _workspace(tmp_path, trained, models)
    (ws.archive / "C" / "adapter" / MERGE_RECORD).unlink()
    with pytest.raises(MergeError, match="neither weights/ nor an adapter with a merge record"):
        generation_dir(ws, "C")
