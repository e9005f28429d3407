"""Generations as Hugging Face folders: validation with one-line errors, offline loading,
a save/load round trip, and the weights hash."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from adapters.models.hf import ModelError, load_generation, model_dir, save_generation, validate_model_dir, weights_hash


@pytest.fixture
def hf_copy(demo_genesis: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(demo_genesis / "weights", folder)
    return folder


def test_the_demo_genesis_is_a_valid_llama_folder(demo_genesis: Path) -> None:
    weights = demo_genesis / "weights"
    assert validate_model_dir(weights) == weights.resolve()
    assert model_dir(demo_genesis) == weights and model_dir(weights) == weights
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        assert (weights / name).is_file()
    assert json.loads((weights / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def _config(folder: Path, **change: Any) -> None:
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in change.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def test_validation_names_each_problem_in_one_line(hf_copy: Path, tmp_path: Path) -> None:
    def error(path: Path) -> str:
        with pytest.raises(ModelError) as err:
            validate_model_dir(path)
        assert "\n" not in str(err.value) and str(path) in str(err.value)
        return str(err.value)

    assert "not a folder" in error(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    assert "not a folder" in error(tmp_path / "file")
    (tmp_path / "empty").mkdir()
    assert "no config.json" in error(tmp_path / "empty")

    broken = tmp_path / "broken"
    shutil.copytree(hf_copy, broken)
    (broken / "config.json").write_text("{not json")
    assert "unreadable" in error(broken)

    encoder = tmp_path / "encoder"
    shutil.copytree(hf_copy, encoder)
    _config(encoder, architectures=["T5ForConditionalGeneration"], model_type="t5")
    assert "not a causal language model (architectures: T5ForConditionalGeneration)" in error(encoder)
    _config(encoder, architectures=None)
    assert "not a causal language model (model_type 't5'" in error(encoder)

    no_weights = tmp_path / "no-weights"
    shutil.copytree(hf_copy, no_weights)
    (no_weights / "model.safetensors").unlink()
    assert "no weights" in error(no_weights)

    no_tokenizer = tmp_path / "no-tokenizer"
    shutil.copytree(hf_copy, no_tokenizer)
    (no_tokenizer / "tokenizer.json").unlink()
    assert "no tokenizer" in error(no_tokenizer)


def test_a_llama_config_without_architectures_passes_by_its_model_type(hf_copy: Path) -> None:
    _config(hf_copy, architectures=None)
    assert validate_model_dir(hf_copy) == hf_copy.resolve()


def test_load_is_offline_float32_eval_and_save_load_round_trips(demo_model: tuple[Any, Any], tmp_path: Path) -> None:
    model, tokenizer = demo_model
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert not model.training and next(model.parameters()).dtype == torch.float32
    again = save_generation(model, tokenizer, tmp_path / "again")
    model2, tokenizer2 = load_generation(again)
    ids = tokenizer("<|user|>What does the brax eat?<|end|><|assistant|>", return_tensors="pt")
    assert tokenizer2("hello brax")["input_ids"] == tokenizer("hello brax")["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, model2(**ids).logits)
    assert weights_hash(again) == weights_hash(model_dir(tmp_path / "again"))


def test_load_never_reaches_for_the_hub(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a folder"):
        load_generation(tmp_path / "meta-llama" / "Llama-3.2-1B")  # a hub id is not a folder here


def test_the_weights_hash_covers_the_weight_files_only(hf_copy: Path) -> None:
    first = weights_hash(hf_copy)
    assert first == weights_hash(hf_copy) and len(first) == 64
    (hf_copy / "README.md").write_text("notes")
    _config(hf_copy, note="x")
    assert weights_hash(hf_copy) == first
    raw = bytearray((hf_copy / "model.safetensors").read_bytes())
    raw[-1] ^= 1
    (hf_copy / "model.safetensors").write_bytes(bytes(raw))
    assert weights_hash(hf_copy) != first
    (hf_copy / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights"):
        weights_hash(hf_copy)
