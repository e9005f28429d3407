"""The window's teacher cache: G(N)'s and G(N-1)'s targets for the shared examples, computed
once per window and read by every branch (no teacher forward inside a branch's training).

Format: two files written atomically (``<out>.tmp`` then rename; the index last, so an index
never names a missing tensor file):

``<out_path>`` (safetensors)
    ``input_ids``  int32 [total_tokens]       every example's tokens, one after another
    ``t1_vals``    fp32|fp16 [total_tokens, k] G(N)'s top-k logits at each position (the
                                              prediction of the NEXT token), largest first
    ``t1_idx``     int32 [total_tokens, k]     their vocabulary indices
    ``t2_vals``, ``t2_idx``                    the same for G(N-1); absent without a stabilizer
``<out_path>.json`` (the index)
    ``ids``, ``offsets``, ``lengths``: example i is ``input_ids[offsets[i]:offsets[i]+lengths[i]]``;
    ``teachers``: per example, which teachers know it (``adapters.training.loss``: 0 NEW,
    1 PRIMARY, 2 BOTH; absent in caches of older versions: BOTH for every example),
    ``top_k`` (k, at most the vocab size), ``vocab_size``, ``max_seq_len``, ``values_dtype``,
    ``primary`` / ``stabilizer``: {name, path, blake3 (``adapters.models.hf.weights_hash``)}
    (stabilizer null: the loss uses w = 0),
    ``tokenizer``: {bos_token_id, bos_added, eos_token_id, eos_appended, pad_token_id}.

Tokenization: the parent's tokenizer with its own special tokens (a BOS when it adds one), then
the EOS appended when the tokenizer has one (so students learn to stop), cut to ``max_seq_len``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

INDEX_SUFFIX = ".json"


@dataclass(frozen=True)
class CacheInfo:
    path: str
    index_path: str
    examples: int
    tokens: int
    top_k: int
    vocab_size: int
    has_stabilizer: bool
    teacher_forwards: int  # batched forward passes run (both teachers together)
    seconds: float


def model_hash(model_dir: str | os.PathLike[str]) -> str:
    """The generation's weights hash, as the rest of evo computes it (``adapters.models.hf``)."""
    from adapters.models.hf import weights_hash

    return weights_hash(model_dir)


def load_model(model_dir: str, device: str = "cpu", dtype: str = "float32") -> Any:
    """A causal LM from a local HF folder (or a generation folder holding ``weights/``), its
    weights in ``dtype`` (``adapters.training.precision``: float32, bfloat16 or float16)."""
    from adapters.models.hf import load_generation
    from adapters.training.precision import torch_dtype

    model, _ = load_generation(model_dir, device=device, dtype=torch_dtype(dtype))
    return model


def load_tokenizer(model_dir: str) -> Any:
    """The tokenizer of a model folder (``adapters.models.hf.load_tokenizer``)."""
    from adapters.models.hf import load_tokenizer as load

    return load(model_dir)


def tokenize(tokenizer: Any, text: str, max_seq_len: int) -> tuple[list[int], bool, bool]:
    """(ids, bos_added, eos_appended) for one example, as the cache stores it."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    bos_added = bool(ids) and bos is not None and ids[0] == bos
    eos_appended = eos is not None and (not ids or ids[-1] != eos)
    if eos_appended:
        ids.append(eos)
    return ids[:max_seq_len], bos_added, eos_appended


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


@torch.no_grad()
def _topk_batches(
    model: Any, batches: list[list[list[int]]], k: int, device: str, pad: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    vals, idx = [], []
    for batch in batches:
        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        top = torch.topk(logits.float(), k, dim=-1)
        keep = mask.to(device).bool()  # right padding: row-major order = example order
        vals.append(top.values[keep].to(dtype).cpu())
        idx.append(top.indices[keep].to(torch.int32).cpu())
    return torch.cat(vals), torch.cat(idx)


def build_cache(
    parent_dir: str,
    stabilizer_dir: str | None,
    examples: list[tuple[str, str]],
    out_path: str,
    *,
    max_seq_len: int,
    top_k: int,
    device: str = "cpu",
    batch_size: int = 8,
    values_dtype: str = "float32",
    parent_name: str = "",
    stabilizer_name: str = "",
    parent_hash: str = "",
    stabilizer_hash: str = "",
    teachers: dict[str, int] | None = None,
    model_dtype: str = "float32",
) -> CacheInfo:
    """Run G(N) (and G(N-1) when given) once over ``examples`` (id, text) and store the targets.
    ``teachers`` maps an example id to which teachers know it (default: BOTH). The teachers run
    in ``model_dtype`` (one at a time, no float32 copy of either); only each batch's logits are
    widened to float32 for the top-k."""
    from adapters.training.loss import BOTH, NEW

    import time

    start = time.perf_counter()
    if not examples:
        raise ValueError("no examples to cache")
    if len({i for i, _ in examples}) != len(examples):
        raise ValueError("duplicate example ids")
    kinds = [BOTH if teachers is None else teachers.get(i, BOTH) for i, _ in examples]
    if any(k not in range(NEW, BOTH + 1) for k in kinds):
        raise ValueError(f"a teachers value must be {NEW}..{BOTH}")
    tokenizer = load_tokenizer(parent_dir)
    rows = [tokenize(tokenizer, text, max_seq_len) for _, text in examples]
    seqs = [ids for ids, _, _ in rows]
    if any(len(ids) < 2 for ids in seqs):
        raise ValueError("an example has fewer than 2 tokens")
    pad = tokenizer.pad_token_id
    pad = int(pad if pad is not None else (tokenizer.eos_token_id or 0))
    dtype = {"float32": torch.float32, "float16": torch.float16}[values_dtype]
    batches = [seqs[i : i + batch_size] for i in range(0, len(seqs), batch_size)]

    tensors: dict[str, torch.Tensor] = {
        "input_ids": torch.tensor([t for ids in seqs for t in ids], dtype=torch.int32)
    }
    models = [("t1", parent_dir)] + ([("t2", stabilizer_dir)] if stabilizer_dir else [])
    vocab = k = 0
    for key, model_dir in models:
        model = load_model(model_dir, device, model_dtype).eval()
        size = int(model.get_output_embeddings().weight.shape[0])
        if vocab and size != vocab:
            raise ValueError(f"teachers disagree on the vocabulary: {vocab} vs {size}")
        vocab, k = size, min(top_k, size)
        tensors[f"{key}_vals"], tensors[f"{key}_idx"] = _topk_batches(
            model, batches, k, device, pad, dtype
        )
        del model

    lengths = [len(ids) for ids in seqs]
    offsets = [sum(lengths[:i]) for i in range(len(lengths))]
    index = {
        "version": 1,
        "ids": [i for i, _ in examples],
        "offsets": offsets,
        "lengths": lengths,
        "teachers": kinds,
        "top_k": k,
        "vocab_size": vocab,
        "max_seq_len": max_seq_len,
        "values_dtype": values_dtype,
        "teachers_dtype": model_dtype,
        "primary": {
            "name": parent_name, "path": str(parent_dir),
            "blake3": parent_hash or model_hash(parent_dir),
        },
        "stabilizer": None if not stabilizer_dir else {
            "name": stabilizer_name, "path": str(stabilizer_dir),
            "blake3": stabilizer_hash or model_hash(stabilizer_dir),
        },
        "tokenizer": {
            "bos_token_id": tokenizer.bos_token_id,
            "bos_added": all(bos for _, bos, _ in rows),
            "eos_token_id": tokenizer.eos_token_id,
            "eos_appended": all(eos for _, _, eos in rows),
            "pad_token_id": pad,
        },
    }
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    index_path = out.with_name(out.name + INDEX_SUFFIX)
    _atomic_write(out, lambda p: save_file(tensors, str(p), metadata={"format": "pt"}))
    _atomic_write(index_path, lambda p: p.write_text(json.dumps(index, indent=1)))
    return CacheInfo(
        path=str(out), index_path=str(index_path), examples=len(seqs), tokens=sum(lengths),
        top_k=k, vocab_size=vocab, has_stabilizer=bool(stabilizer_dir),
        teacher_forwards=len(batches) * len(models), seconds=time.perf_counter() - start,
    )


class TeacherCache:
    """A built cache, loaded whole into memory; ``batch(ids)`` serves padded training batches."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.index: dict[str, Any] = json.loads(
            self.path.with_name(self.path.name + INDEX_SUFFIX).read_text()
        )
        self.tensors = load_file(str(self.path))
        self.has_stabilizer = "t2_vals" in self.tensors
        self.top_k: int = self.index["top_k"]
        self.vocab_size: int = self.index["vocab_size"]
        self.pad_token_id: int = self.index["tokenizer"]["pad_token_id"]
        self._where = {
            ex: (off, n)
            for ex, off, n in zip(self.index["ids"], self.index["offsets"], self.index["lengths"])
        }
        from adapters.training.loss import BOTH

        kinds = self.index.get("teachers") or [BOTH] * len(self.index["ids"])
        self._teachers = dict(zip(self.index["ids"], kinds))

    def teachers(self, example_id: str) -> int:
        """Which teachers know the example (``adapters.training.loss``: NEW, PRIMARY, BOTH)."""
        return int(self._teachers[example_id])

    @property
    def ids(self) -> list[str]:
        return list(self.index["ids"])

    def __contains__(self, example_id: str) -> bool:
        return example_id in self._where

    def tokens(self, example_id: str) -> int:
        return int(self._where[example_id][1])

    def batch(self, ids: list[str] | tuple[str, ...]) -> dict[str, torch.Tensor | None]:
        """Right-padded tensors [B, L(, k)]: input_ids, attention_mask, labels (-100 at padding),
        t1_vals, t1_idx, t2_vals, t2_idx (the last two None without a stabilizer), and
        teachers [B] (which teachers know each row)."""
        spans = [self._where[i] for i in ids]
        width = max(n for _, n in spans)
        b, k = len(spans), self.top_k
        out: dict[str, torch.Tensor | None] = {
            "input_ids": torch.full((b, width), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((b, width), dtype=torch.long),
            "labels": torch.full((b, width), -100, dtype=torch.long),
            "teachers": torch.tensor([self._teachers[i] for i in ids], dtype=torch.long),
        }
        keys = ["t1", "t2"] if self.has_stabilizer else ["t1"]
        for key in keys:
            out[f"{key}_vals"] = torch.zeros((b, width, k), dtype=self.tensors[f"{key}_vals"].dtype)
            out[f"{key}_idx"] = torch.zeros((b, width, k), dtype=torch.long)
        if not self.has_stabilizer:
            out["t2_vals"] = out["t2_idx"] = None
        for row, (off, n) in enumerate(spans):
            ids_row = self.tensors["input_ids"][off : off + n].long()
            out["input_ids"][row, :n] = ids_row  # type: ignore[index]
            out["attention_mask"][row, :n] = 1  # type: ignore[index]
            out["labels"][row, :n] = ids_row  # type: ignore[index]
            for key in keys:
                out[f"{key}_vals"][row, :n] = self.tensors[f"{key}_vals"][off : off + n]  # type: ignore[index]
                out[f"{key}_idx"][row, :n] = self.tensors[f"{key}_idx"][off : off + n].long()  # type: ignore[index]
        return out
