"""A Hugging Face tokenizer as the vocabulary llama.cpp reads from a GGUF file.

llama.cpp implements a handful of tokenizer algorithms and pre-tokenizers in C++; a GGUF names
which (``tokenizer.ggml.model`` and ``tokenizer.ggml.pre``) and carries the vocabulary. A wrong
choice is silent: llama.cpp then splits text differently from transformers and nothing else
complains (the parity check compares the ids). ``read_vocab`` recognises two families from
``tokenizer.json`` alone (no ``sentencepiece`` needed, so a generation saved by
``save_pretrained``, which keeps only ``tokenizer.json``, exports the same as its base):

**Byte-level BPE** (GPT-2, Llama 3, Qwen2/2.5/3): ``tokenizer.ggml.model = "gpt2"``, tokens,
merges (no scores, as llama.cpp's converter writes). The pre-tokenizer is recognised by its *regular expression*
(``PRE_TOKENIZERS``): a ``ByteLevel`` pre-tokenizer with its own GPT-2 regex is ``gpt-2``; a
``Split`` with Llama 3's regex followed by a regex-free ``ByteLevel`` is ``llama-bpe``; with
Qwen2's (single digits) it is ``qwen2``. llama.cpp's own converter recognises them by hashing
the ids of a probe text, which only works for the published vocabularies; the regex is what
actually decides the split, so evo also exports a tokenizer trained locally with that regex.
Llama 3's ``ignore_merges`` is part of llama.cpp's ``llama-bpe`` and is required for it.

**SentencePiece BPE with byte fallback** (Llama 2, TinyLlama, Mistral, Phi-3, Gemma):
``tokenizer.ggml.model = "llama"``, pre ``default``. llama.cpp merges the adjacent pair whose
joined piece has the highest *score*; SentencePiece's BPE scores are ``-k`` for the k-th normal
piece, and a converted ``tokenizer.json`` keeps SentencePiece's piece order, so the score of a
normal piece is ``-(id - first normal id)``: exactly what ``tokenizer.model`` holds (the family
tests compare with llama.cpp's converter reading ``tokenizer.model``). Types: ``<unk>`` UNKNOWN,
the special added tokens CONTROL (score -1000, as the converter writes), ``<0xNN>`` BYTE, other
added tokens USER_DEFINED. ``add_space_prefix`` is whether the tokenizer's normalizer prepends "▁" to
each text segment (``Prepend``): true for Llama 2 and Mistral, false for Gemma. A ``Metaspace``
pre-tokenizer (what transformers 5 builds from a ``tokenizer.model`` by itself) prefixes only
the first segment and not a text that starts with a space, where llama.cpp prefixes every
segment: refused, naming the fix.

Anything else (WordPiece, Unigram, a BPE with another regex) is refused in one line naming what
was found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adapters.serving.gguf_families import ExportError

GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# llama.cpp's pre-tokenizer name for each regex a Split pre-tokenizer may carry.
PRE_TOKENIZERS = {LLAMA3_REGEX: "llama-bpe", QWEN2_REGEX: "qwen2"}


@dataclass(frozen=True)
class Vocab:
    model: str  # tokenizer.ggml.model: "gpt2" or "llama"
    pre: str  # tokenizer.ggml.pre
    tokens: list[str]
    scores: list[float]
    types: list[int]
    merges: list[str] = field(default_factory=list)
    add_space_prefix: bool | None = None  # SentencePiece only


@dataclass(frozen=True)
class TokenizerKind:
    model: str
    pre: str
    add_space_prefix: bool | None


def _load_spec(folder: Path) -> dict[str, Any]:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise ExportError(
            f"{folder}: GGUF export needs a tokenizer.json (the fast tokenizer; "
            "`AutoTokenizer.from_pretrained(folder).save_pretrained(folder)` writes one)"
        )
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"{path}: unreadable ({exc})") from None
    if not isinstance(spec, dict):
        raise ExportError(f"{path}: not a JSON object")
    return spec


def _steps(node: dict[str, Any] | None, key: str) -> list[dict[str, Any]]:
    """A pre-tokenizer/normalizer as a flat list of steps (a ``Sequence`` unrolled)."""
    if not node:
        return []
    if node.get("type") == "Sequence":
        return [step for child in node.get(key, []) for step in _steps(child, key)]
    return [node]


def _regex(step: dict[str, Any]) -> str | None:
    pattern = step.get("pattern") or {}
    return pattern.get("Regex") if isinstance(pattern, dict) else None


def classify(spec: dict[str, Any], where: Path) -> TokenizerKind:
    """Which llama.cpp tokenizer reproduces ``spec`` (see the module doc), else ``ExportError``."""
    model = spec.get("model") or {}
    pre = _steps(spec.get("pre_tokenizer"), "pretokenizers")
    norm = _steps(spec.get("normalizer"), "normalizers")
    kinds = [s.get("type") for s in pre]
    if model.get("type") == "BPE" and model.get("byte_fallback"):
        if any(s.get("type") == "Metaspace" for s in pre):
            raise ExportError(
                f"{where}: this SentencePiece tokenizer's Metaspace pre-tokenizer puts its space prefix "
                "differently from llama.cpp (which prefixes every text segment, after special tokens "
                "too); save it with the Prepend+Replace normalizer the published Llama 2 tokenizer.json has"
            )
        spaces = any(s.get("type") == "Replace" and (s.get("pattern") or {}).get("String") == " " for s in norm)
        prepend = any(s.get("type") == "Prepend" and s.get("prepend") == "\u2581" for s in norm)
        # Gemma's Split on " " after the normalizer replaced every space is a no-op
        known_pre = all(s.get("type") == "Split" and (s.get("pattern") or {}).get("String") == " " for s in pre)
        known_norm = all(s.get("type") in ("Prepend", "Replace") for s in norm)
        if spaces and known_pre and known_norm:
            return TokenizerKind("llama", "default", prepend)
    elif model.get("type") == "BPE" and kinds and kinds[-1] == "ByteLevel" and not norm_blocks(norm):
        last = pre[-1]
        if not last.get("add_prefix_space", False):
            if len(pre) == 1 and last.get("use_regex", True):
                return TokenizerKind("gpt2", "gpt-2", None)
            if len(pre) == 2 and kinds[0] == "Split" and not last.get("use_regex", True):
                name = PRE_TOKENIZERS.get(_regex(pre[0]) or "")
                if name == "llama-bpe" and not model.get("ignore_merges", False):
                    name = None  # llama.cpp's llama-bpe ignores merges for whole-vocabulary words
                if name is not None:
                    return TokenizerKind("gpt2", name, None)
    described = (
        f"{model.get('type')}{' with byte fallback' if model.get('byte_fallback') else ''}, "
        f"pre-tokenizer {'+'.join(map(str, kinds)) or 'none'}, "
        f"normalizer {'+'.join(str(s.get('type')) for s in norm) or 'none'}"
    )
    raise ExportError(
        f"{where}: GGUF export supports byte-level BPE (GPT-2, Llama 3, Qwen2 pre-tokenizers) and "
        f"SentencePiece BPE with byte fallback (Llama 2, Mistral, Gemma, Phi-3); this tokenizer is {described}"
    )


def norm_blocks(norm: list[dict[str, Any]]) -> bool:
    """Whether a byte-level tokenizer's normalizer changes text llama.cpp would not: NFC is
    tolerated (Qwen2's; llama.cpp skips it, which only matters for text that is not NFC already)."""
    return any(s.get("type") != "NFC" for s in norm)


def check_tokenizer(folder: Path) -> TokenizerKind:
    """The tokenizer kind of a folder, reading JSON only (cheap, before anything is written)."""
    return classify(_load_spec(folder), folder / "tokenizer.json")


def read_vocab(folder: Path, tokenizer: Any, n_vocab: int) -> Vocab:
    """The GGUF vocabulary of ``tokenizer`` (loaded from ``folder``), ``n_vocab`` entries (the
    embedding's rows: ids the tokenizer lacks become unused ``[PADi]``)."""
    import gguf

    spec = _load_spec(folder)
    kind = classify(spec, folder / "tokenizer.json")
    vocab = tokenizer.get_vocab()
    if len(vocab) > n_vocab:
        raise ExportError(f"{folder}: the tokenizer has {len(vocab)} tokens, the embedding only {n_vocab} rows")
    by_id = {i: t for t, i in vocab.items()}
    added = tokenizer.added_tokens_decoder  # id -> AddedToken
    tokens: list[str] = []
    scores: list[float] = []
    types: list[int] = []
    if kind.model == "gpt2":
        for i in range(n_vocab):
            if i not in by_id:
                tokens.append(f"[PAD{i}]")
                types.append(gguf.TokenType.UNUSED)
            elif i in added:
                tokens.append(by_id[i])
                types.append(gguf.TokenType.CONTROL if added[i].special else gguf.TokenType.USER_DEFINED)
            else:
                tokens.append(by_id[i])
                types.append(gguf.TokenType.NORMAL)
        merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges", [])]
        return Vocab(kind.model, kind.pre, tokens, [], types, merges)

    unk = tokenizer.unk_token if tokenizer.unk_token in vocab else None
    byte_piece = [f"<0x{b:02X}>" for b in range(256)]
    normal_ids = [i for i in sorted(by_id) if i not in added and by_id[i] not in byte_piece and by_id[i] != unk]
    first_normal = normal_ids[0] if normal_ids else 0
    for i in range(n_vocab):
        piece = by_id.get(i)
        if piece is None:
            tokens.append(f"[PAD{i}]")
            scores.append(-1000.0)
            types.append(gguf.TokenType.UNUSED)
        elif piece == unk:
            tokens.append(piece)
            scores.append(0.0)
            types.append(gguf.TokenType.UNKNOWN)
        elif i in added:
            special = added[i].special
            tokens.append(piece if special else piece.replace("▁", " "))
            scores.append(0.0 if i < first_normal else -1000.0)  # SentencePiece's own pieces score 0
            types.append(gguf.TokenType.CONTROL if special else gguf.TokenType.USER_DEFINED)
        elif piece in byte_piece:
            tokens.append(piece)
            scores.append(0.0)
            types.append(gguf.TokenType.BYTE)
        else:
            tokens.append(piece)
            scores.append(-float(i - first_normal))
            types.append(gguf.TokenType.NORMAL)
    return Vocab(kind.model, kind.pre, tokens, scores, types, [], kind.add_space_prefix)


def add_vocab(writer: Any, vocab: Vocab) -> None:
    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    if vocab.scores:
        writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    if vocab.merges:
        writer.add_token_merges(vocab.merges)
    if vocab.add_space_prefix is False:  # llama.cpp's default for SentencePiece is true
        writer.add_add_space_prefix(vocab.add_space_prefix)
