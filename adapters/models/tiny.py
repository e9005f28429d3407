"""Tiny models of the mainstream families, built locally (no download), for tests and benches.

``build_tiny(family, folder)`` writes a Hugging Face folder a user's model would look like, in
miniature: the family's real architecture class and config keys (Llama 2 and 3.1 with its
``llama3`` RoPE scaling, Mistral, Qwen2.5 with tied embeddings and attention biases, Qwen3
with its q/k norms, Gemma 2 with softcapping, Gemma 3 (text) with its two RoPE bases, Phi-3 with fused projections), a tokenizer of the
family's kind trained on the demo corpus, its special tokens and its chat template's shape:

- SentencePiece BPE with byte fallback (``tokenizer.model`` trained with ``sentencepiece``,
  converted by transformers to ``tokenizer.json``): Llama 2, Mistral, Phi-3 (a space prefix,
  ``legacy`` as those ship it) and Gemma (no space prefix);
- byte-level BPE with Llama 3's pre-tokenizer regex (``ignore_merges``, BOS added) or Qwen2's
  (single digits, NFC, no BOS), trained with ``tokenizers``.

Weights are random (seeded): these models are for the machinery (export, parity, serving,
training) and for speed and memory (``hidden``/``layers`` scale them up for benches), not for
what they say.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FAMILIES = ("llama2", "llama3", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3")

TEMPLATES = {
    "llama2": (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ '[INST] <<SYS>>\\n' + m['content'] + '\\n<</SYS>>\\n\\n' }}"
        "{% elif m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
        "{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}"
    ),
    "mistral": (
        "{% for m in messages %}{% if m['role'] == 'user' or m['role'] == 'system' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
        "{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    ),
    "chatml": (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    ),
    "gemma2": (
        "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else 'user' %}"
        "{{ '<start_of_turn>' + role + '\\n' + m['content'] + '<end_of_turn>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
    ),
    "phi3": (
        "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + '<|end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    ),
}


def _corpus() -> Iterator[str]:
    from adapters.data.demo_world import CORPUS_PATH

    yield from CORPUS_PATH.read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------- tokenizers


def _sentencepiece(folder: Path, *, vocab: int, prefix: bool, specials: dict[str, Any], user: list[str],
                   config: dict[str, Any]) -> Any:
    """A SentencePiece BPE model with byte fallback, as transformers converts it."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_corpus(), model_writer=model, vocab_size=vocab, model_type="bpe",
        byte_fallback=True, split_digits=True, add_dummy_prefix=prefix, normalization_rule_name="identity",
        remove_extra_whitespaces=False, character_coverage=1.0, allow_whitespace_only_pieces=True,
        user_defined_symbols=user, minloglevel=2, num_threads=1, **specials,
    )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.model").write_bytes(model.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if prefix:  # the published Llama 2 form: a space before every text segment, as llama.cpp does
        tok.save_pretrained(folder)
        spec = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
        spec["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"},
        ]}
        spec["pre_tokenizer"] = None
        (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
        # transformers 5 rebuilds a LlamaTokenizer from tokenizer.model (as Metaspace, which
        # prefixes only the first segment); the generic class reads tokenizer.json as written
        saved = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        saved["tokenizer_class"] = "PreTrainedTokenizerFast"
        (folder / "tokenizer_config.json").write_text(json.dumps(saved), encoding="utf-8")
        tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return tok


def _byte_bpe(folder: Path, *, vocab: int, regex: str, specials: list[str], bos: str | None, nfc: bool,
              ignore_merges: bool, config: dict[str, Any]) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **config)


def family_tokenizer(family: str, folder: Path, vocab: int) -> Any:
    from adapters.serving.gguf_vocab import LLAMA3_REGEX, QWEN2_REGEX

    from tokenizers import AddedToken

    if family in ("llama2", "mistral", "phi3"):
        # Phi-3's chat markers swallow the whitespace after them (rstrip), as llama.cpp's phi3 does
        user = ["<|endoftext|>", "<|assistant|>", "<|system|>", "<|end|>", "<|user|>"] if family == "phi3" else []
        eos = "<|end|>" if family == "phi3" else "</s>"
        tok = _sentencepiece(
            folder, vocab=vocab, prefix=True, specials={"unk_id": 0, "bos_id": 1, "eos_id": 2, "pad_id": -1},
            user=user, config={"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": eos,
                               "unk_token": "<unk>", "add_bos_token": True, "add_eos_token": False, "legacy": True},
        )
        if user:
            tok.add_special_tokens({"additional_special_tokens": [AddedToken(t, rstrip=True, special=True) for t in user]})
    elif family in ("gemma2", "gemma3"):
        tok = _sentencepiece(
            folder, vocab=vocab, prefix=False,
            specials={"pad_id": 0, "eos_id": 1, "bos_id": 2, "unk_id": 3, "pad_piece": "<pad>", "eos_piece": "<eos>",
                      "bos_piece": "<bos>", "unk_piece": "<unk>"},
            user=["<start_of_turn>", "<end_of_turn>"],
            config={"tokenizer_class": "GemmaTokenizer", "bos_token": "<bos>", "eos_token": "<end_of_turn>",
                    "unk_token": "<unk>", "pad_token": "<pad>", "add_bos_token": True, "add_eos_token": False},
        )
        tok.add_special_tokens({"additional_special_tokens": ["<start_of_turn>", "<end_of_turn>"]})
    elif family == "llama3":
        specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        tok = _byte_bpe(folder, vocab=vocab, regex=LLAMA3_REGEX, specials=specials, bos="<|begin_of_text|>",
                        nfc=False, ignore_merges=True,
                        config={"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})
    else:  # qwen2, qwen3
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        tok = _byte_bpe(folder, vocab=vocab, regex=QWEN2_REGEX, specials=specials, bos=None, nfc=True,
                        ignore_merges=False, config={"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    tok.chat_template = TEMPLATES["chatml" if family.startswith("qwen") else "gemma2" if family == "gemma3" else family]
    return tok


# ---------------------------------------------------------------- models


def family_config(family: str, tok: Any, *, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int,
            positions: int) -> Any:
    import transformers

    n_vocab = len(tok)
    ids = {"bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    common = dict(vocab_size=n_vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                  num_key_value_heads=kv_heads, intermediate_size=intermediate, max_position_embeddings=positions,
                  rms_norm_eps=1e-5, **ids)
    if family in ("llama2", "llama3"):
        rope: dict[str, Any] = {"rope_type": "default", "rope_theta": 10000.0}
        if family == "llama3":
            rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                    "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
        return transformers.LlamaConfig(**common, rope_parameters=rope, tie_word_embeddings=False)
    if family == "mistral":
        return transformers.MistralConfig(**common, sliding_window=None, tie_word_embeddings=False)
    if family == "qwen2":
        return transformers.Qwen2Config(**common, tie_word_embeddings=True, use_sliding_window=False)
    if family == "qwen3":
        return transformers.Qwen3Config(**common, head_dim=hidden // heads, tie_word_embeddings=True,
                                        use_sliding_window=False)
    if family == "gemma2":
        return transformers.Gemma2Config(**common, head_dim=hidden // heads, query_pre_attn_scalar=hidden // heads,
                                         sliding_window=positions, attn_logit_softcapping=50.0,
                                         final_logit_softcapping=30.0)
    if family == "gemma3":
        return transformers.Gemma3TextConfig(**common, head_dim=hidden // heads, query_pre_attn_scalar=hidden // heads,
                                             sliding_window=positions)
    if family == "phi3":
        return transformers.Phi3Config(**common, sliding_window=positions, tie_word_embeddings=False,
                                       original_max_position_embeddings=positions)
    raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")


def build_tiny(
    family: str, folder: str | Path, *, seed: int = 0, vocab: int = 400, hidden: int = 64, layers: int = 2,
    heads: int = 4, kv_heads: int = 2, intermediate: int = 128, positions: int = 512,
) -> Path:
    """Write a tiny ``family`` model (random weights, see the module doc) into ``folder``."""
    import torch
    from transformers import AutoModelForCausalLM

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    tok = family_tokenizer(family, out, vocab)
    config = family_config(family, tok, hidden=hidden, layers=layers, heads=heads, kv_heads=kv_heads,
                     intermediate=intermediate, positions=positions)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():  # larger than the default init, so logits differ visibly between tokens
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.08)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
