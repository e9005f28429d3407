"""What differs between model families when a Hugging Face folder becomes a GGUF file.

Each ``Family`` says, for one transformers architecture, which llama.cpp architecture computes
the same function and what must be true of the file for it to do so. It is the same knowledge
llama.cpp's ``convert_hf_to_gguf.py`` holds in its model classes (``LlamaModel``,
``Qwen2Model``, ``Qwen3Model``, ``Gemma2Model``, ``Gemma3Model``, ``Phi3MiniModel``), written down for the
families evo serves and checked against it (``tests/serving/test_families.py`` converts the same
folders with llama.cpp's converter and compares every tensor and every key):

- ``permute_qk``: llama.cpp's ``llama`` architecture rotates adjacent pairs ("normal" RoPE)
  while transformers rotates halves, so ``q_proj``/``k_proj`` are permuted per head (Llama,
  Mistral). Qwen2/3, Gemma 2 and Phi-3 use NEOX RoPE in llama.cpp: no permutation.
- ``norm_shift``: Gemma's RMSNorm multiplies by ``1 + weight``; llama.cpp's by ``weight``, so
  the converter stores ``weight + 1`` for every ``*norm.weight``.
- ``hparams``: the keys the architecture reads beyond the common ones (softcapping and sliding
  window for Gemma 2; the RoPE dimension and original context for Phi-3).
- ``refuse``: configurations llama.cpp would compute differently, refused in one line before
  anything is written (``check_config``).

RoPE scaling: ``linear`` and ``yarn`` become GGUF keys; ``llama3`` (Llama 3.1/3.2) becomes the
``rope_freqs.weight`` tensor of per-frequency factors, computed exactly as the converter does;
Phi-3's ``longrope`` becomes its long/short factor tensors. Anything else is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from adapters.runtime.workspace import WorkspaceError


class ExportError(WorkspaceError):
    """A model folder cannot be written as GGUF faithfully (exit 1, one line)."""


def _rope_params(config: dict[str, Any]) -> dict[str, Any]:
    """transformers 5's ``rope_parameters`` merged over the older ``rope_theta``/``rope_scaling``."""
    params: dict[str, Any] = {}
    if "rope_theta" in config:
        params["rope_theta"] = config["rope_theta"]
    if isinstance(config.get("rope_scaling"), dict):
        params.update(config["rope_scaling"])
        if "type" in params and "rope_type" not in params:
            params["rope_type"] = params["type"]
    if isinstance(config.get("rope_parameters"), dict):
        rope = config["rope_parameters"]
        # Gemma 3: per layer type; the global layers' parameters are the model's
        params.update(rope.get("full_attention", rope))
    return params


def rope_type(config: dict[str, Any]) -> str:
    return str(_rope_params(config).get("rope_type", "default")).lower()


def head_dim(config: dict[str, Any]) -> int:
    return int(config.get("head_dim") or int(config["hidden_size"]) // int(config["num_attention_heads"]))


# ---------------------------------------------------------------- hyper-parameters


def _shape(writer: Any, config: dict[str, Any]) -> None:
    """The network's shape: every family writes these keys."""
    n_head = int(config["num_attention_heads"])
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(n_head)
    writer.add_head_count_kv(int(config.get("num_key_value_heads") or n_head))


def common_hparams(writer: Any, config: dict[str, Any]) -> None:
    """``TextModel.set_gguf_parameters``: the keys most families share."""
    import gguf

    _shape(writer, config)
    params = _rope_params(config)
    kind = rope_type(config)
    if kind == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(params["factor"]))
    elif kind == "yarn":
        writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
        writer.add_rope_scaling_factor(float(params["factor"]))
        writer.add_rope_scaling_orig_ctx_len(int(params["original_max_position_embeddings"]))
    elif kind in ("longrope", "su"):
        writer.add_rope_scaling_type(gguf.RopeScalingType.LONGROPE)
    if "rope_theta" in params:
        writer.add_rope_freq_base(float(params["rope_theta"]))
    writer.add_layer_norm_rms_eps(float(config.get("rms_norm_eps", 1e-6)))
    if config.get("head_dim") is not None:
        writer.add_key_length(int(config["head_dim"]))
        writer.add_value_length(int(config["head_dim"]))


def _llama_hparams(writer: Any, config: dict[str, Any]) -> None:
    common_hparams(writer, config)
    writer.add_vocab_size(int(config["vocab_size"]))
    writer.add_rope_dimension_count(head_dim(config))


def _gemma2_hparams(writer: Any, config: dict[str, Any]) -> None:
    _shape(writer, config)
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_key_length(int(config["head_dim"]))
    writer.add_value_length(int(config["head_dim"]))
    writer.add_attn_logit_softcapping(float(config["attn_logit_softcapping"]))
    writer.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
    writer.add_sliding_window(int(config["sliding_window"]))


def _gemma3_hparams(writer: Any, config: dict[str, Any]) -> None:
    """``Gemma3Model.set_gguf_parameters``: the common keys, the sliding layers' RoPE base, the
    window and the final softcap."""
    common_hparams(writer, config)
    sliding = (config.get("rope_parameters") or {}).get("sliding_attention") or {}
    if "rope_theta" in sliding:
        writer.add_rope_freq_base_swa(float(sliding["rope_theta"]))
    if config.get("final_logit_softcapping"):
        writer.add_final_logit_softcapping(float(config["final_logit_softcapping"]))
    if config.get("sliding_window_pattern") != 1:
        writer.add_sliding_window(int(config["sliding_window"]))


def _phi3_rope_dims(config: dict[str, Any]) -> int:
    rot = float(_rope_params(config).get("partial_rotary_factor", config.get("partial_rotary_factor", 1.0)))
    return int(rot * int(config["hidden_size"])) // int(config["num_attention_heads"])


def _phi3_original_context(config: dict[str, Any]) -> int:
    params = _rope_params(config)
    return int(params.get("original_max_position_embeddings", config.get("original_max_position_embeddings")
                          or config["max_position_embeddings"]))


def _phi3_hparams(writer: Any, config: dict[str, Any]) -> None:
    _shape(writer, config)
    writer.add_rope_scaling_orig_ctx_len(_phi3_original_context(config))
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_rope_dimension_count(_phi3_rope_dims(config))
    writer.add_rope_freq_base(float(_rope_params(config).get("rope_theta", 10000.0)))
    writer.add_sliding_window(int(config.get("sliding_window") or 0))


# ---------------------------------------------------------------- extra tensors


def _llama3_rope_freqs(config: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """``LlamaModel.generate_extra_tensors``: Llama 3.1's per-frequency RoPE factors."""
    import numpy as np

    params = _rope_params(config)
    if rope_type(config) != "llama3":
        return
    base = float(params.get("rope_theta", 10000.0))
    dim = head_dim(config)
    factor = float(params.get("factor", 8.0))
    low = float(params.get("low_freq_factor", 1.0))
    high = float(params.get("high_freq_factor", 4.0))
    old_ctx = float(params.get("original_max_position_embeddings", 8192))
    import torch

    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    low_wavelen, high_wavelen = old_ctx / low, old_ctx / high
    factors: list[float] = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(factor)
        else:
            smooth = (old_ctx / wavelen - low) / (high - low)
            factors.append(1 / ((1 - smooth) / factor + smooth))
    yield "rope_freqs.weight", torch.tensor(factors, dtype=torch.float32).numpy().astype(np.float32)


def _phi3_rope_factors(config: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    import numpy as np

    params = _rope_params(config)
    long_f, short_f = params.get("long_factor"), params.get("short_factor")
    if not long_f:
        return
    yield "rope_factors_long.weight", np.asarray(long_f, dtype=np.float32)
    yield "rope_factors_short.weight", np.asarray(short_f, dtype=np.float32)


def _no_extra(config: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    return iter(())


# ---------------------------------------------------------------- refusals


def _refuse_common(config: dict[str, Any], family: Family) -> str | None:
    kind = rope_type(config)
    if kind not in family.rope_types:
        return f"{kind!r} RoPE scaling (this family exports {', '.join(family.rope_types)})"
    if config.get("mlp_bias"):
        return "mlp_bias=true"
    if config.get("attention_bias") and family.name in ("llama", "mistral"):
        return "attention_bias=true"
    return None


def _refuse_gemma2(config: dict[str, Any], family: Family) -> str | None:
    theta = float(_rope_params(config).get("rope_theta", 10000.0))
    if theta != 10000.0:
        return f"rope_theta {theta:g} (llama.cpp's gemma2 reads no RoPE base and uses 10000)"
    scalar = config.get("query_pre_attn_scalar")
    if scalar is not None and int(scalar) != head_dim(config):
        return f"query_pre_attn_scalar {scalar} != head_dim {head_dim(config)} (llama.cpp scales by head_dim)"
    return _refuse_common(config, family)


def _refuse_gemma3(config: dict[str, Any], family: Family) -> str | None:
    if config.get("attn_logit_softcapping") is not None:
        return "attn_logit_softcapping (llama.cpp's gemma3 has none)"
    scalar = config.get("query_pre_attn_scalar")
    if scalar is not None and int(scalar) != head_dim(config):
        return f"query_pre_attn_scalar {scalar} != head_dim {head_dim(config)} (llama.cpp scales by head_dim)"
    types = config.get("layer_types")
    if isinstance(types, list) and types != [
        "full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(len(types))
    ]:
        return "layer_types other than five sliding layers then one global (llama.cpp's gemma3 pattern)"
    return _refuse_common(config, family)


def _refuse_qwen2(config: dict[str, Any], family: Family) -> str | None:
    if config.get("use_sliding_window"):
        return "use_sliding_window=true (llama.cpp's qwen2 attends to the whole context)"
    return _refuse_common(config, family)


@dataclass(frozen=True)
class Family:
    name: str
    arch: str  # gguf.MODEL_ARCH member name
    hparams: Callable[[Any, dict[str, Any]], None]
    permute_qk: bool = False
    norm_shift: float = 0.0
    extra: Callable[[dict[str, Any]], Iterator[tuple[str, Any]]] = _no_extra
    skip: tuple[str, ...] = ()  # HF tensors the architecture does not read
    rope_types: tuple[str, ...] = ("default",)
    refuse: Callable[[dict[str, Any], Family], str | None] = _refuse_common
    # the f32 parity tolerance's floor: ggml's CPU GELU reads an f16 table (~1e-3 relative), so a
    # GELU family's f32 logits differ by more than SiLU families' (measured 9e-4 on tiny Gemma 2)
    tolerance_floor: float = 0.0
    # llama.cpp keys some tokenizer behaviour on general.name (Phi-3's markers strip the
    # whitespace after them only when the name contains "phi3"): the name must say so
    name_tag: str = ""


LLAMA = Family("llama", "LLAMA", _llama_hparams, permute_qk=True, extra=_llama3_rope_freqs,
               rope_types=("default", "linear", "yarn", "llama3"))
MISTRAL = Family("mistral", "LLAMA", _llama_hparams, permute_qk=True, rope_types=("default", "linear", "yarn"))
QWEN2 = Family("qwen2", "QWEN2", common_hparams, rope_types=("default", "linear", "yarn"), refuse=_refuse_qwen2)
QWEN3 = Family("qwen3", "QWEN3", common_hparams, rope_types=("default", "linear", "yarn"), refuse=_refuse_qwen2)
GEMMA2 = Family("gemma2", "GEMMA2", _gemma2_hparams, norm_shift=1.0, skip=("lm_head.weight",), refuse=_refuse_gemma2,
                tolerance_floor=0.01)
GEMMA3 = Family("gemma3", "GEMMA3", _gemma3_hparams, norm_shift=1.0, skip=("lm_head.weight",),
                rope_types=("default", "linear"), refuse=_refuse_gemma3, tolerance_floor=0.01)
PHI3 = Family("phi3", "PHI3", _phi3_hparams, extra=_phi3_rope_factors, rope_types=("default", "longrope", "su"),
              name_tag="phi3")

FAMILIES: dict[str, Family] = {
    "LlamaForCausalLM": LLAMA,
    "MistralForCausalLM": MISTRAL,
    "Qwen2ForCausalLM": QWEN2,
    "Qwen3ForCausalLM": QWEN3,
    "Gemma2ForCausalLM": GEMMA2,
    "Gemma3ForCausalLM": GEMMA3,
    "Phi3ForCausalLM": PHI3,
}


def family_of(config: dict[str, Any], where: object) -> Family:
    """The family of a ``config.json`` (its first known architecture), checked; else
    ``ExportError`` naming what is unsupported."""
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    family = next((FAMILIES[a] for a in archs if a in FAMILIES), None)
    if family is None:
        named = ", ".join(archs) or f"model_type {config.get('model_type')!r}"
        raise ExportError(f"{where}: GGUF export supports {', '.join(FAMILIES)}, not {named}")
    problem = family.refuse(config, family)
    if problem is not None:
        raise ExportError(f"{where}: GGUF export of {family.name} does not support {problem}")
    return family
