"""The demo genesis: a tiny Llama pre-trained on the demo world's genesis corpus, no download.

``build_demo_genesis(folder)`` writes ``folder/weights/`` (a HF folder) and
``folder/data_ids.json`` (the ids of the conversations it trained on, which the replay buffer
reads). Steps:

1. the tokenizer: byte-level BPE (``ByteLevel`` pre-tokenizer, ``add_prefix_space=False``, as
   llama.cpp's ``gpt-2`` pre-tokenizer expects) trained with ``tokenizers`` on the shipped
   ``adapters/data/demo_corpus.txt``, ``VOCAB_SIZE`` tokens including the specials of
   ``adapters.data.format``: ``<|bos|>`` (BOS, added by the post-processor when encoding),
   ``<|end|>`` (EOS: the end of every turn), ``<|pad|>`` and the role markers; its
   ``chat_template`` is evo's plain template, so ``render`` gives the same text either way;
2. the model: ``LlamaForCausalLM`` from ``LlamaConfig`` (``HIDDEN`` wide, ``LAYERS`` layers,
   ``HEADS`` heads, untied embeddings, 256 positions): about 1M parameters, enough to learn
   every new fact of a window (a 166k model learned about half and garbled new names);
3. pre-training: AdamW (``LEARNING_RATE`` after a ``WARMUP``-step linear warm-up, cosine decay
   to a tenth, gradient norm clipped to 1) on every token of the rendered genesis corpus for
   ``STEPS`` full-batch steps, seeded and with deterministic algorithms on up to 2 threads (1
   or 2 give the same arithmetic), so the same seed gives the same weights (~1 min on 2 cores).
   Greedy decoding then answers every genesis fact in all three phrasings (the held-out one
   included: genesis teaches the wordings).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.data.conversations import Conversation
from adapters.data.demo_world import CORPUS_PATH, genesis_corpus
from adapters.data.format import BOS, CHAT_TEMPLATE, END, PAD, SPECIAL_TOKENS, render
from adapters.models.hf import save_generation, weights_hash
from adapters.training.recipe import lr_factor
from adapters.training.spec import Schedule

VOCAB_SIZE = 512
HIDDEN = 128
INTERMEDIATE = 352
LAYERS = 4
HEADS = 4
MAX_POSITIONS = 256
STEPS = 200
LEARNING_RATE = 3e-3
WARMUP = 20


@dataclass(frozen=True)
class DemoGenesis:
    folder: Path  # the generation's folder: weights/ and data_ids.json
    weights: Path
    model_hash: str
    conversations: list[Conversation]  # what it trained on (cycle 0)
    parameters: int
    loss_start: float
    loss_final: float
    seconds: float


def train_tokenizer(corpus: Path = CORPUS_PATH, vocab_size: int = VOCAB_SIZE) -> Any:
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``corpus`` (one text per line)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    lines = corpus.read_text().splitlines()
    tok.train_from_iterator(lines, trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)]
    )
    roles = [t for t in SPECIAL_TOKENS if t not in (BOS, END, PAD)]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=END,
        pad_token=PAD,
        extra_special_tokens=roles,
        model_max_length=MAX_POSITIONS,
        padding_side="right",
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def demo_config(tokenizer: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def batch(tokenizer: Any, texts: list[str]) -> dict[str, Any]:
    """Token ids, attention mask and labels (padding masked with -100) for causal-LM loss."""
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    labels = enc["input_ids"].clone()
    labels[enc["attention_mask"] == 0] = -100
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


def _family_parts(family: str, folder: Path) -> tuple[Any, Any]:
    """(tokenizer, config) of a ``family`` demo: ``adapters.models.tiny``'s tokenizer of that
    family's kind and chat template, trained on the demo corpus (its files, SentencePiece's model
    included, written into ``folder``), and its config class at the demo's size."""
    from adapters.models.tiny import family_config, family_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = family_tokenizer(family, folder, VOCAB_SIZE)
    if tokenizer.pad_token is None:  # batches are padded (and the padding masked)
        tokenizer.pad_token = tokenizer.eos_token
    config = family_config(
        family, tokenizer, hidden=HIDDEN, layers=LAYERS, heads=HEADS, kv_heads=HEADS,
        intermediate=INTERMEDIATE, positions=MAX_POSITIONS,
    )
    return tokenizer, config


def build_demo_genesis(
    folder: str | Path, *, seed: int = 0, steps: int = STEPS, family: str | None = None
) -> DemoGenesis:
    """Train the demo tokenizer and pre-train the tiny Llama; save them under ``folder``.
    ``family`` (one of ``adapters.models.tiny.FAMILIES``): the same demo world and recipe on that
    family's architecture, tokenizer kind and chat template instead."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, LlamaForCausalLM

    started = time.perf_counter()
    out = Path(folder)
    if family is None:
        tokenizer = train_tokenizer()
        config = demo_config(tokenizer)
    else:
        tokenizer, config = _family_parts(family, out / "weights")
    convs = genesis_corpus(seed)
    data = batch(tokenizer, [render(c, tokenizer) for c in convs])

    was_deterministic = torch.are_deterministic_algorithms_enabled()
    rng_state = torch.random.get_rng_state()
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, os.cpu_count() or 1))  # 1.9x faster on 2 cores, the same arithmetic
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        model = LlamaForCausalLM(config) if family is None else AutoModelForCausalLM.from_config(config)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
        recipe = Schedule(warmup_steps=WARMUP)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, steps, recipe))
        losses = []
        for _ in range(steps):
            loss = model(**data).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), recipe.max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
        model.eval()
    finally:
        torch.use_deterministic_algorithms(was_deterministic)
        torch.random.set_rng_state(rng_state)
        torch.set_num_threads(threads)

    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    weights = save_generation(model, tokenizer, out / "weights")
    (out / "data_ids.json").write_text(json.dumps(sorted(c.id for c in convs)) + "\n")
    return DemoGenesis(
        folder=out,
        weights=weights,
        model_hash=weights_hash(weights),
        conversations=convs,
        parameters=sum(p.numel() for p in model.parameters()),
        loss_start=losses[0] if losses else float("nan"),
        loss_final=losses[-1] if losses else float("nan"),
        seconds=time.perf_counter() - started,
    )
