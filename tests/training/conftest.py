"""Session fixtures: a tiny byte-level BPE tokenizer trained here, two tiny random Llama models
(G(N) the parent, G(N-1) the stabilizer) saved as HF folders, a corpus and one teacher cache."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from adapters.training.spec import Distill, Lora, TrainSpec
from evo_core.values import BudgetLimits

VOCAB = 300
WORDS = (
    "luna river stone light quiet garden owl morning lantern bridge harbor sings listens "
    "remembers walks the a of to and under over near bright slow kind old new"
).split()


def _corpus(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))) + "." for _ in range(n)]


def _tokenizer(texts: list[str]):  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def _model(seed: int, tokenizer, path: Path) -> Path:  # type: ignore[no-untyped-def]
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # sharper logits than the 0.02-std init, so KD targets are not flat
        model.lm_head.weight.mul_(20.0)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def corpus() -> list[tuple[str, str]]:
    return [(f"ex{i:03d}", text) for i, text in enumerate(_corpus(24))]


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("models")
    tokenizer = _tokenizer(_corpus(400, seed=1))
    return {
        "parent": str(_model(1, tokenizer, root / "G001")),
        "stabilizer": str(_model(0, tokenizer, root / "G000")),
    }


@pytest.fixture(scope="session")
def cache_path(models: dict[str, str], corpus, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    from adapters.training.teacher_cache import build_cache

    path = tmp_path_factory.mktemp("cache") / "teacher_cache.safetensors"
    build_cache(
        models["parent"], models["stabilizer"], corpus, str(path),
        max_seq_len=48, top_k=16, batch_size=8, parent_name="G001", stabilizer_name="G000",
    )
    return str(path)


LIMITS = BudgetLimits(
    max_steps=1000, max_walltime_minutes=60.0, max_gpu_memory_gb=1000.0,
    max_tokens_processed=10_000_000, max_disk_gb=10.0,
)


@pytest.fixture
def make_spec(models, cache_path, corpus, tmp_path):  # type: ignore[no-untyped-def]
    counter = iter(range(1000))

    def make(**overrides) -> TrainSpec:  # type: ignore[no-untyped-def]
        fields = dict(
            candidate="w1-a", window=1, gen=2, branch="a", seed=424242, strategy="uniform_sample",
            parent="G001", parent_dir=models["parent"], stabilizer="G000",
            stabilizer_dir=models["stabilizer"], cache_path=cache_path,
            example_ids=tuple(i for i, _ in corpus), new_count=16, data_delta_hash="d" * 64,
            out_dir=str(tmp_path / f"out{next(counter)}"), budget=LIMITS,
            distill=Distill(alpha=0.1, beta=0.9, temperature=2.0, stabilizer_weight=0.3),
            lora=Lora(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj")),
            steps=6, batch_size=4, learning_rate=5e-3, threads=1,
        )
        fields.update(overrides)
        return TrainSpec(**fields)

    return make
