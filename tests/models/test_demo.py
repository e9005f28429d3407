"""The demo genesis: a byte-level BPE tokenizer and a tiny Llama that really learned its corpus,
built deterministically, registered by `evo init --demo` with its data ids in the store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from adapters.data import demo_world as w
from adapters.data.conversations import Message, load
from adapters.data.format import SPECIAL_TOKENS, render
from adapters.models import demo
from adapters.models.hf import weights_hash
from adapters.runtime.workspace import Workspace


def generate(model: Any, tokenizer: Any, question: str) -> str:
    prompt = render([Message("user", question)], tokenizer, add_generation_prompt=True)
    ids = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=24, do_sample=False)
    return str(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True))


def test_the_tokenizer_is_byte_level_bpe_with_explicit_specials(demo_model: tuple[Any, Any]) -> None:
    _, tok = demo_model
    assert len(tok) == demo.VOCAB_SIZE
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|bos|>", "<|end|>", "<|pad|>")
    for special in SPECIAL_TOKENS:
        assert tok.convert_tokens_to_ids(special) < len(SPECIAL_TOKENS)  # first in the vocabulary
    backend = json.loads(tok.backend_tokenizer.to_str())
    assert backend["model"]["type"] == "BPE"
    assert backend["pre_tokenizer"] == {
        "type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True
    }
    assert tok.convert_ids_to_tokens(tok("The brax")["input_ids"])[:2] == ["<|bos|>", "The"]  # no prefix space
    for text in ("Ünïcödé ✓ 日本", "tabs\tand\nnewlines", "The blurk eats seeds."):
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_the_model_is_a_tiny_untied_llama(demo_model: tuple[Any, Any]) -> None:
    model, tok = demo_model
    c = model.config
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads) == (demo.HIDDEN, demo.LAYERS, demo.HEADS)
    assert c.vocab_size == len(tok) and c.max_position_embeddings == 256 and not c.tie_word_embeddings
    assert (c.bos_token_id, c.eos_token_id, c.pad_token_id) == (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id)
    assert 800_000 < sum(p.numel() for p in model.parameters()) < 1_200_000  # ~1M: learns a whole era


def test_pre_training_made_it_a_language_model_of_the_genesis_corpus(demo_model: tuple[Any, Any]) -> None:
    from transformers import LlamaForCausalLM

    model, tok = demo_model
    data = demo.batch(tok, [render(c, tok) for c in w.genesis_corpus(0)])
    torch.manual_seed(0)
    fresh = LlamaForCausalLM(model.config).eval()
    with torch.no_grad():
        trained, random_init = float(model(**data).loss), float(fresh(**data).loss)
    assert random_init > 5.0 and trained < 0.5


def test_it_answers_the_genesis_facts_and_keeps_the_laws(demo_model: tuple[Any, Any]) -> None:
    model, tok = demo_model
    facts = w.era_facts(0)
    right = sum(generate(model, tok, f.question(0)) == f.answer() for f in facts)
    assert right >= 0.9 * len(facts)
    for law in w.LAWS:
        for prompt in law.tempting:
            assert not w.violations(generate(model, tok, prompt)), prompt
    unseen = w.era_facts(1)  # new material it cannot know yet
    assert sum(generate(model, tok, f.question(0)) == f.answer() for f in unseen) == 0


def test_its_data_ids_are_the_genesis_conversations_in_the_store(demo_workspace: Path, demo_genesis: Path) -> None:
    ids = json.loads((demo_genesis / "data_ids.json").read_text())
    assert ids == sorted(c.id for c in w.genesis_corpus(0))
    stored = {c.id: c for c in load(Workspace(demo_workspace))}
    assert set(ids) <= set(stored) and all(stored[i].cycle == 0 for i in ids)


def test_init_registered_it_with_its_weights_hash(demo_workspace: Path, demo_genesis: Path) -> None:
    from adapters.runtime.app import App
    from adapters.hashing import hash_tree
    from evo_core.events import GenerationRegistered

    with App(demo_workspace) as app:
        events = [r.event for r in app.store.ledger.records()]
    reg = next(e for e in events if isinstance(e, GenerationRegistered))
    assert reg.source == "demo" and reg.archive == "archive/Luna-G000-genesis"
    assert reg.model_hash == weights_hash(demo_genesis / "weights")
    assert reg.archive_hash == hash_tree(demo_genesis)


def test_the_build_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = demo.build_demo_genesis(tmp_path / "a", seed=1, steps=3)
    b = demo.build_demo_genesis(tmp_path / "b", seed=1, steps=3)
    c = demo.build_demo_genesis(tmp_path / "c", seed=2, steps=3)
    assert a.model_hash == b.model_hash != c.model_hash
    assert a.model_hash == weights_hash(tmp_path / "a" / "weights")
    assert (tmp_path / "a" / "weights" / "tokenizer.json").read_bytes() == (
        tmp_path / "c" / "weights" / "tokenizer.json"
    ).read_bytes()  # the tokenizer depends on the shipped corpus only
    assert a.loss_final < a.loss_start and a.parameters > 100_000


def _fine_tune(model: Any, tok: Any, texts: list[str], steps: int, seed: int = 0) -> Any:
    import copy
    import random

    model = copy.deepcopy(model)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        loss = model(**demo.batch(tok, rng.sample(texts, 8))).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def _known(model: Any, tok: Any, facts: list[w.Fact]) -> float:
    return sum(generate(model, tok, f.question(0)) == f.answer() for f in facts) / len(facts)


def test_a_window_of_the_demo_world_teaches_new_facts_and_makes_it_forget_old_ones(
    demo_model: tuple[Any, Any],
) -> None:
    """The demo world's promise: a window's data is learnable new material, and training on it
    alone forgets genesis, unless something (here: replaying genesis) prevents it."""
    model, tok = demo_model
    genesis, new = w.era_facts(0), w.era_facts(1)
    window = [render(c, tok) for c in w.conversations(1, w.ERA_CYCLES, seed=0, per_1000_cycles=200)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        alone = _fine_tune(model, tok, window, steps=150)
        replayed = _fine_tune(model, tok, window + [render(c, tok) for c in w.genesis_corpus(0)] * 2, steps=150)
    finally:
        torch.set_num_threads(threads)
    assert _known(model, tok, new) == 0.0 and _known(model, tok, genesis) >= 0.9
    assert _known(alone, tok, new) >= 0.8
    assert _known(alone, tok, genesis) <= 0.3
    assert _known(replayed, tok, genesis) >= _known(alone, tok, genesis) + 0.4
