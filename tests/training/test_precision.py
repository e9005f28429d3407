"""The dtype policy: "auto" keeps small models in float32; a bf16 base trains a float32 LoRA
and keeps its merged weights in bf16; the teacher cache runs its teachers in their dtype."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapters.training import precision
from adapters.training.precision import (
    AUTO_MIN_PARAMETERS, compute_dtype, parameter_count, resolve_checkpointing, resolve_dtype, resolve_gguf_type,
)
from adapters.training.teacher_cache import TeacherCache, build_cache, load_model
from adapters.training.trainer import add_lora, forward, train
from evo_core.config import ConfigError, parse_config


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


def test_checkpointing_auto_is_on_for_real_sizes_only_and_the_setting_is_a_switch() -> None:
    big = AUTO_MIN_PARAMETERS
    assert (resolve_checkpointing("auto", big - 1), resolve_checkpointing("auto", big)) == (False, True)
    assert (resolve_checkpointing(False, big), resolve_checkpointing(True, 10)) == (False, True)
    assert parse_config("[model]\ndtype = \"auto\"").model.gradient_checkpointing == "auto"
    for bad in ('"yes"', "1"):
        with pytest.raises(ConfigError, match='model.gradient_checkpointing: .*"auto", true or false'):
            parse_config(f"[model]\ngradient_checkpointing = {bad}")


def _saved_bytes(model, ids: torch.Tensor, autocast) -> int:  # type: ignore[no-untyped-def]
    """Bytes autograd keeps for the backward pass of one forward (each storage once)."""
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter):
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward(model, autocast, input_ids=ids).float().sum().backward()
    return sum(kept.values())


def test_a_bf16_student_keeps_no_float32_copies_of_its_activations(models) -> None:  # type: ignore[no-untyped-def]
    """On a bf16 base the LoRA runs under bf16 autocast on the base's own activations; peft's
    default (each projection's input cast to a float32 copy, kept for backward) keeps far more."""
    from adapters.training.spec import Lora

    lora = Lora(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"))
    ids = torch.randint(3, 200, (4, 32), generator=torch.Generator().manual_seed(0))
    assert compute_dtype("bfloat16") == torch.bfloat16 and compute_dtype("float32") is None
    student = add_lora(load_model(models["parent"], dtype="bfloat16"), lora, 0)
    assert {p.dtype for p in student.parameters() if p.requires_grad} == {torch.float32}
    assert _lora_inputs(student, ids, torch.bfloat16) == {"the base's own bf16 activation"}
    assert _lora_inputs(student, ids, None) == {"a float32 copy"}  # peft's default, kept for float16 bases
    assert _saved_bytes(student, ids, torch.bfloat16) < 0.8 * _saved_bytes(student, ids, None)


def _lora_inputs(model, ids: torch.Tensor, autocast) -> set[str]:  # type: ignore[no-untyped-def]
    """What each LoRA A matrix is fed: the tensor its projection was given, or a copy."""
    seen: set[str] = set()
    given: dict[int, int] = {}
    hooks = []
    for layer in (m for m in model.modules() if hasattr(m, "lora_A") and "default" in m.lora_A):
        hooks.append(layer.register_forward_pre_hook(lambda m, a: given.__setitem__(id(m), a[0].data_ptr())))

        def fed(m, a, layer=layer):  # type: ignore[no-untyped-def]
            same = a[0].data_ptr() == given[id(layer)] and a[0].dtype == torch.bfloat16
            seen.add("the base's own bf16 activation" if same else f"a {str(a[0].dtype)[6:]} copy")

        hooks.append(layer.lora_A["default"].register_forward_pre_hook(fed))
    with torch.no_grad():
        forward(model, autocast, input_ids=ids)
    for hook in hooks:
        hook.remove()
    return seen


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
    assert args["dtype"] == {
        "base": "bfloat16", "adapter": "float32", "autocast": "bfloat16", "gradient_checkpointing": True,
    }
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
