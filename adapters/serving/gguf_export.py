"""A Hugging Face causal-LM folder written as one GGUF file that llama.cpp serves.

Theory of operation. A llama.cpp architecture computes the same function as the transformers
model given three things, each of which silently breaks parity when wrong (and nothing else
complains):

1. **Tensor layout.** Names follow ``gguf``'s own HF-to-GGUF table (``blk.N.attn_q.weight``...),
   transformed per family as llama.cpp's ``convert_hf_to_gguf.py`` does
   (``adapters.serving.gguf_families``): for Llama and Mistral ``q_proj``/``k_proj`` (weights and
   biases) are *permuted* per head (HF's rotary embedding rotates the two halves of a head,
   ggml's "normal" RoPE adjacent pairs; ``permute_qk`` interleaves the halves), Gemma's norms
   are stored ``+1``, extra tensors (Llama 3.1's ``rope_freqs``) are computed.
2. **Hyper-parameters**: the shape, RMSNorm epsilon, RoPE base and scaling (``rope_parameters``
   in transformers 5, ``rope_theta``/``rope_scaling`` before), and the family's own keys;
   configurations llama.cpp computes differently are refused in one line.
3. **The tokenizer, embedded** (``adapters.serving.gguf_vocab``): byte-level BPE or SentencePiece
   BPE, tokens in id order (holes become ``[PADi]``, unused), scores, types (the tokenizer's
   special added tokens are ``CONTROL``, so llama.cpp parses them in text only when asked, like
   HF), merges, BOS/EOS/UNK/PAD ids and ``add_bos_token``/``add_eos_token`` measured by encoding
   a probe string (the demo tokenizer adds BOS in its post-processor, not through a config
   flag), and the chat template.

``export_gguf`` writes to a temporary file beside the target, fsyncs and renames: a reader sees
the old file or the new one, never half of one. Whether the result is right is
``adapters.serving.parity``'s job: this module only writes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

import msgspec

from adapters.hashing import hash_file
from adapters.serving.parity import ParityReport
from adapters.serving.quantize import QuantReport
from adapters.runtime.activity import Progress, silent
from adapters.runtime.workspace import write_atomic
from adapters.serving.gguf_families import ExportError, Family, family_of
from adapters.serving.gguf_vocab import add_vocab, check_tokenizer, read_vocab

__all__ = ["ExportError", "export_gguf", "export_generation", "check_exportable"]

GGUF_NAME = "model.gguf"
EXPORT_JSON = "export.json"
Dtype = Literal["f32", "f16", "q8_0"]
DTYPES: tuple[Dtype, ...] = ("f32", "f16", "q8_0")
class ExportInfo(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    dtype: str
    bytes: int
    seconds: float
    blake3: str


class ExportRecord(msgspec.Struct, frozen=True, kw_only=True):
    """``export.json`` beside a generation's ``model.gguf``: what was written and how it compared."""

    gguf: str  # the file name, relative to the generation's folder
    dtype: str
    bytes: int
    blake3: str  # of model.gguf
    weights_hash: str  # of weights/ (adapters.models.hf.weights_hash): both formats are hashed
    seconds: float
    parity: ParityReport  # of the unquantized export (f32/f16; for a quantized dtype, its f16 source)
    # a quantized dtype (adapters.serving.quantize): model.gguf checked against its f16 source
    quantized: QuantReport | None = None
    # bytes on disk of the generation's folder after the export (adapters.runtime.disk_usage):
    # weights, adapter, gguf, other, total
    disk: dict[str, int] = msgspec.field(default_factory=dict)


def permute_qk(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """llama.cpp's ``LlamaModel.permute``: per head, rows ``[x0..x(d/2-1), y0..]`` become
    ``[x0, y0, x1, y1...]`` (HF's half-split RoPE to ggml's interleaved one)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    shape = weights.shape
    return weights.reshape(n_head, 2, shape[0] // n_head // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


# ---------------------------------------------------------------- config


def _read_config(folder: Path) -> tuple[dict[str, Any], Family]:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: unreadable ({exc})") from None
    if not isinstance(config, dict):
        raise ExportError(f"{path}: not a JSON object")
    return dict(config), family_of(config, folder)


# ---------------------------------------------------------------- tokenizer


def _add_tokenizer(writer: Any, folder: Path, n_vocab: int) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    add_vocab(writer, read_vocab(folder, tok, n_vocab))
    probe = "a"
    plain = tok(probe, add_special_tokens=False)["input_ids"]
    full = tok(probe)["input_ids"]
    add_bos = tok.bos_token_id is not None and len(full) > len(plain) and full[0] == tok.bos_token_id
    add_eos = tok.eos_token_id is not None and len(full) > len(plain) and full[-1] == tok.eos_token_id
    if len(full) - len(plain) != int(add_bos) + int(add_eos):
        raise ExportError(f"{folder}: the tokenizer adds tokens other than BOS/EOS when encoding; not exportable")
    for setter, token_id in (
        (writer.add_bos_token_id, tok.bos_token_id),
        (writer.add_eos_token_id, tok.eos_token_id),
        (writer.add_unk_token_id, tok.unk_token_id if tok.unk_token in tok.get_vocab() else None),
        (writer.add_pad_token_id, tok.pad_token_id),
    ):
        if token_id is not None:
            setter(int(token_id))
    writer.add_add_bos_token(bool(add_bos))
    writer.add_add_eos_token(bool(add_eos))
    if isinstance(getattr(tok, "chat_template", None), str):
        writer.add_chat_template(tok.chat_template)


def check_exportable(hf_dir: str | os.PathLike[str]) -> None:
    """``ExportError`` (one line) unless the folder's config and tokenizer are ones
    ``export_gguf`` writes faithfully; reads only JSON (cheap, before anything is written)."""
    folder = Path(hf_dir)
    _read_config(folder)
    check_tokenizer(folder)


# ---------------------------------------------------------------- tensors


def _load_state_dict(folder: Path) -> dict[str, Any]:
    """Every weight as stored (safetensors shards, else ``*.bin``): torch tensors in their own
    dtype. ``_add_tensors`` takes them out one at a time, so that only one float32 copy exists at
    once (all of them at once were twice a bf16 model's bytes: 1.9 GB on a 0.5B model)."""
    import torch

    out: dict[str, Any] = {}
    files = sorted(folder.glob("*.safetensors"))
    if files:
        from safetensors.torch import load_file

        for path in files:
            out.update(load_file(path))
    else:
        for path in sorted(folder.glob("*.bin")):
            if not path.name.startswith("training_args"):
                out.update(torch.load(path, map_location="cpu", weights_only=True))
    if not out:
        raise ExportError(f"{folder}: no weights (no *.safetensors or *.bin file)")
    return out


def _float32(tensor: Any) -> Any:
    """One weight as a float32 numpy array, the form every encoding starts from."""
    import torch

    return tensor.detach().to(torch.float32).numpy()


def _encode(data: Any, dtype: Dtype) -> tuple[Any, Any]:
    """``(array, raw_dtype or None)``: 1-D tensors (norms) stay f32 as llama.cpp's converter keeps
    them; q8_0 needs rows of a multiple of 32 and falls back to f16 otherwise."""
    import gguf
    import numpy as np

    if dtype == "f32" or data.ndim < 2:
        return data.astype(np.float32), None
    if dtype == "q8_0" and data.shape[-1] % gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType.Q8_0][0] == 0:
        return gguf.quants.quantize(data, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    return data.astype(np.float16), None


_FILE_TYPES = {"f32": 0, "f16": 1, "q8_0": 7}  # gguf.LlamaFileType ALL_F32, MOSTLY_F16, MOSTLY_Q8_0


def _add_tensors(
    writer: Any, config: dict[str, Any], family: Family, weights: dict[str, Any], dtype: Dtype, progress: Progress
) -> None:
    """Every weight, renamed and encoded, into the writer; ``weights`` is emptied as it goes."""
    import gguf

    total = len(weights)
    progress("export", 0, total)

    n_head = int(config["num_attention_heads"])
    n_head_kv = int(config.get("num_key_value_heads") or n_head)
    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, family.arch), int(config["num_hidden_layers"]))
    for name, data in family.extra(config):
        writer.add_tensor(name, data)
    for done, hf_name in enumerate(list(weights), 1):
        tensor = weights.pop(hf_name)  # the source tensor goes once it is encoded (the writer keeps the encoding)
        if hf_name.endswith("rotary_emb.inv_freq") or hf_name in family.skip:
            continue
        data = _float32(tensor)
        del tensor
        if family.permute_qk and hf_name.endswith(("q_proj.weight", "q_proj.bias")):
            data = permute_qk(data, n_head, n_head)
        elif family.permute_qk and hf_name.endswith(("k_proj.weight", "k_proj.bias")):
            data = permute_qk(data, n_head, n_head_kv)
        if family.norm_shift and hf_name.endswith("norm.weight"):
            data = data + family.norm_shift
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"no GGUF name for tensor {hf_name!r} in a {family.name} model")
        array, raw = _encode(data, dtype)
        writer.add_tensor(gguf_name, array, raw_dtype=raw)
        progress("export", done, total)


# ---------------------------------------------------------------- export



def export_gguf(
    hf_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    dtype: Dtype = "f32",
    name: str | None = None,
    progress: Progress = silent,
) -> ExportInfo:
    """Write the HF folder ``hf_dir`` (a generation's ``weights/``) as GGUF at ``out_path``
    (``general.name``: ``name``, else the folder's); ``progress`` hears ``load``, ``export``
    (tensors) and ``write``."""
    import gguf

    if dtype not in DTYPES:
        raise ExportError(f"unknown GGUF dtype {dtype!r}; one of {', '.join(DTYPES)}")
    started = time.perf_counter()
    folder = Path(hf_dir)
    out = Path(out_path)
    config, family = _read_config(folder)
    progress("load", 0, 1)
    weights = _load_state_dict(folder)
    progress("load", 1, 1)
    embed = weights.get("model.embed_tokens.weight")
    if embed is None:
        raise ExportError(f"{folder}: no model.embed_tokens.weight (not a {family.name} checkpoint)")
    n_vocab = int(embed.shape[0])

    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, family.arch)])
    try:
        title = name or (folder.parent.name if folder.name == "weights" else folder.name)
        if family.name_tag and family.name_tag not in title.lower():
            title = f"{title}-{family.name_tag}"
        writer.add_name(title)
        family.hparams(writer, config)
        writer.add_file_type(_FILE_TYPES[dtype])
        _add_tokenizer(writer, folder, n_vocab)
        _add_tensors(writer, config, family, weights, dtype, progress)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        progress("write", 0, 1)
        writer.write_tensors_to_file()
        assert writer.fout is not None
        for f in writer.fout:
            f.flush()
            os.fsync(f.fileno())
        writer.close()
        os.replace(tmp, out)
        progress("write", 1, 1)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return ExportInfo(
        path=str(out),
        dtype=dtype,
        bytes=out.stat().st_size,
        seconds=time.perf_counter() - started,
        blake3=hash_file(out),
    )


def export_generation(
    folder: str | os.PathLike[str],
    *,
    dtype: str = "f32",
    name: str | None = None,
    tolerance: float | None = None,
    progress: Progress = silent,
) -> ExportRecord:
    """Export ``folder/weights`` to ``folder/model.gguf``, check its parity and record both in
    ``folder/export.json``. A failed parity check still leaves both files (the failure must be
    visible and inspectable); the caller decides what it means (``record.parity.passed``, and
    ``record.quantized.passed`` for a quantized dtype).

    ``dtype`` f32 or f16: written directly. A quantized dtype (``adapters.serving.quantize``:
    q8_0 and the K-quants): an f16 export beside it is parity-checked, quantized by llama.cpp into
    ``model.gguf``, checked against it within the type's tolerance, then deleted (a failed parity
    check keeps the f16 file as ``model.gguf`` instead, unquantized)."""
    from adapters.models.hf import weights_hash
    from adapters.runtime.disk_usage import generation_usage
    from adapters.serving.parity import check_parity, tolerance_for
    from adapters.serving.quantize import QUANT_TYPES, SERVED_TYPES, check_quantized, quantize_gguf

    if dtype not in SERVED_TYPES:
        raise ExportError(f"unknown GGUF type {dtype!r}; one of {', '.join(SERVED_TYPES)}")
    root = Path(folder)
    weights = root / "weights"
    if not (weights / "config.json").is_file():
        raise ExportError(f"{root.name}: no weights to export ({weights}/config.json missing)")
    target = root / GGUF_NAME
    quantized = None
    if dtype in QUANT_TYPES:
        source = root / f".{GGUF_NAME}.f16-{os.getpid()}"
        try:
            info = export_gguf(weights, source, dtype="f16", name=name or root.name, progress=progress)
            report = check_parity(
                weights, source, tolerance=tolerance if tolerance is not None else tolerance_for("f16"),
                progress=progress,
            )
            if report.passed:
                progress("quantize", 0, 1)
                seconds = quantize_gguf(source, target, dtype)
                progress("quantize", 1, 1)
                quantized = check_quantized(source, target, dtype, seconds=seconds)
                info = ExportInfo(
                    path=str(target), dtype=dtype, bytes=target.stat().st_size,
                    seconds=info.seconds + seconds, blake3=hash_file(target),
                )
            else:
                os.replace(source, target)
                info = ExportInfo(**{**msgspec.structs.asdict(info), "path": str(target)})
        finally:
            source.unlink(missing_ok=True)
    else:
        info = export_gguf(weights, target, dtype=dtype, name=name or root.name, progress=progress)  # type: ignore[arg-type]
        report = check_parity(
            weights, info.path, tolerance=tolerance if tolerance is not None else tolerance_for(dtype), progress=progress
        )
    record = ExportRecord(
        gguf=GGUF_NAME,
        dtype=info.dtype,
        bytes=info.bytes,
        blake3=info.blake3,
        weights_hash=weights_hash(weights),
        seconds=info.seconds,
        parity=report,
        quantized=quantized,
        disk=generation_usage(root),
    )
    write_atomic(root / EXPORT_JSON, msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n")
    return record
