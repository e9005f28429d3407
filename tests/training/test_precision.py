"""The dtype policy: "auto" keeps small models in float32; a bf16 base trains a float32 LoRA
and keeps its merged weights in bf16; the teacher cache runs its teachers in their dtype."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapters.training import precision
from adapters.training.precision import AUTO_MIN_PARAMETERS, parameter_count, resolve_dtype, resolve_gguf_type
from adapters.training.teacher_cache import TeacherCache, build_cache, load_model
from adapters.training.trainer import train


def test_parameter_count_reads_the_headers(models) -> None:  # type: ignore[no-untyped-def]
    model = load_model(models["parent"])
    assert parameter_count(models["parent"]) == sum(p.numel() for p in model.parameters())


def test_auto_is_float32_for_small_models_and_bf16_only_where_the_device_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = AUTO_MIN_PARAMETERS
    monkeypatch.setattr(precision, "bf16_supported", lambda device: True)
    assert resolve_dtype("auto", "cpu", big - 1) == "float32"  # the demo model's path, tuned in f32
    assert resolve_dtype("auto", "cpu", big) == "bfloat16"
    assert resolve_dtype("float16", "cpu", 10) == "float16"  # an explicit setting is obeyed
    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    assert resolve_dtype("auto", "cpu", big) == "float32"  # no bf16 kernels: f16 is slower than f32 there
    assert resolve_dtype("auto", "cuda", big) == "float16"
    assert (resolve_gguf_type("auto", big - 1), resolve_gguf_type("auto", big)) == ("f32", "f16")
    assert resolve_gguf_type("q4_k_m", 10) == "q4_k_m"
    with pytest.raises(ValueError, match="unknown dtype"):
        resolve_dtype("int8", "cpu", big)


def test_a_bf16_base_trains_a_float32_lora_and_keeps_its_weights_in_bf16(make_spec) -> None:  # type: ignore[no-untyped-def]
    spec = make_spec(dtype="bfloat16", gradient_checkpointing=True)
    result = train(spec)
    assert result.status == "finished", result.reason
    assert torch.isfinite(torch.tensor([result.stats.loss_start, result.stats.loss_final])).all()
    out = Path(spec.out_dir)
    adapter = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert adapter and all(t.dtype == torch.float32 for t in adapter.values())
    lora_b = [t for n, t in adapter.items() if "lora_B" in n]
    assert any(t.abs().sum() > 0 for t in lora_b)  # it learned (B starts at zero)
    merged = load_file(str(out / "weights" / "model.safetensors"))
    assert {t.dtype for n, t in merged.items() if n.endswith("proj.weight")} == {torch.bfloat16}
    args = json.loads((out / "train_args.json").read_text())
    assert args["dtype"] == {"base": "bfloat16", "adapter": "float32", "gradient_checkpointing": True}
    assert load_model(str(out), dtype="bfloat16").model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16


def test_the_teacher_cache_runs_bf16_teachers_close_to_float32(models, corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = {}
    for dtype in ("float32", "bfloat16"):
        paths[dtype] = tmp_path / f"{dtype}.safetensors"
        build_cache(models["parent"], None, corpus[:8], str(paths[dtype]), max_seq_len=48, top_k=8, model_dtype=dtype)
    f32, bf16 = TeacherCache(paths["float32"]), TeacherCache(paths["bfloat16"])
    assert bf16.index["teachers_dtype"] == "bfloat16" and bf16.tensors["t1_vals"].dtype == torch.float32
    top = (f32.tensors["t1_idx"][:, 0] == bf16.tensors["t1_idx"][:, 0]).float().mean()
    assert top > 0.9 and (f32.tensors["t1_vals"] - bf16.tensors["t1_vals"]).abs().max() < 0.5
