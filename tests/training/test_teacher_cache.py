"""The teacher cache: built once, equal to a direct teacher forward, shared by every branch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM

from adapters.training import teacher_cache
from adapters.training.teacher_cache import TeacherCache, build_cache, load_model, tokenize


@pytest.fixture
def count_forwards(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    calls = {"no_grad": 0, "grad": 0}
    original = LlamaForCausalLM.forward

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls["grad" if torch.is_grad_enabled() else "no_grad"] += 1
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "forward", counted)
    return calls


def test_targets_equal_a_direct_teacher_forward(models, corpus, cache_path) -> None:  # type: ignore[no-untyped-def]
    cache = TeacherCache(cache_path)
    assert cache.has_stabilizer and cache.top_k == 16 and cache.vocab_size == 300
    ids = [i for i, _ in corpus[:5]]
    batch = cache.batch(ids)
    tokenizer = teacher_cache.load_tokenizer(models["parent"])
    for key, which in (("t1", "parent"), ("t2", "stabilizer")):
        model = load_model(models[which]).eval()
        for row, (_, text) in enumerate(corpus[:5]):
            tokens, bos, eos = tokenize(tokenizer, text, 48)
            assert bos and eos
            n = len(tokens)
            assert batch["input_ids"][row, :n].tolist() == tokens
            assert batch["attention_mask"][row].sum() == n
            assert (batch["labels"][row, n:] == -100).all()
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([tokens])).logits[0]
            top = torch.topk(logits, 16)
            torch.testing.assert_close(batch[f"{key}_vals"][row, :n], top.values, atol=1e-5, rtol=1e-5)
            # the cached indices point at the cached values in the direct forward's logits
            torch.testing.assert_close(
                logits.gather(-1, batch[f"{key}_idx"][row, :n]), top.values, atol=1e-5, rtol=1e-5
            )


def test_index_records_what_the_cache_holds(cache_path, models, corpus) -> None:  # type: ignore[no-untyped-def]
    index = json.loads(Path(cache_path + ".json").read_text())
    assert index["ids"] == [i for i, _ in corpus]
    assert index["primary"]["name"] == "G001" and len(index["primary"]["blake3"]) == 64
    assert index["stabilizer"]["path"] == models["stabilizer"]
    assert index["tokenizer"]["bos_added"] and index["tokenizer"]["eos_appended"]
    assert index["offsets"][1] == index["lengths"][0]
    assert not list(Path(cache_path).parent.glob("*.tmp"))


def test_one_cache_serves_three_branches_without_a_teacher_forward(  # type: ignore[no-untyped-def]
    models, corpus, make_spec, tmp_path, count_forwards
) -> None:
    from adapters.training.trainer import train

    path = tmp_path / "cache.safetensors"
    info = build_cache(models["parent"], models["stabilizer"], corpus, str(path),
                       max_seq_len=48, top_k=16, batch_size=8)
    assert count_forwards == {"no_grad": 2 * 3, "grad": 0}  # 24 examples / 8, two teachers
    assert info.teacher_forwards == 6 and info.has_stabilizer
    results = [
        train(make_spec(cache_path=str(path), branch=b, candidate=f"w1-{b}", seed=s, steps=3))
        for b, s in (("a", 1), ("b", 2), ("c", 3))
    ]
    assert [r.status for r in results] == ["finished"] * 3, [r.reason for r in results]
    assert count_forwards == {"no_grad": 6, "grad": 3 * 3}  # only the students' steps ran


def test_no_stabilizer_leaves_its_targets_out(models, corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.safetensors"
    info = build_cache(models["parent"], None, corpus[:4], str(path), max_seq_len=8,
                       top_k=1000, batch_size=3, values_dtype="float16")
    cache = TeacherCache(path)
    batch = cache.batch([corpus[0][0], corpus[3][0]])
    assert not info.has_stabilizer and batch["t2_vals"] is None and batch["t2_idx"] is None
    assert info.top_k == 300 and batch["t1_vals"].dtype == torch.float16  # k capped at the vocab
    assert batch["input_ids"].shape == (2, 8)  # cut to max_seq_len
    assert json.loads(Path(str(path) + ".json").read_text())["stabilizer"] is None


def test_the_cache_carries_which_teachers_know_each_example(models, corpus, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from adapters.training.loss import BOTH, NEW, PRIMARY

    kinds = {i: (NEW, PRIMARY, BOTH)[n % 3] for n, (i, _) in enumerate(corpus)}
    path = tmp_path / "c.safetensors"
    build_cache(models["parent"], models["stabilizer"], corpus, str(path), max_seq_len=48, top_k=8, teachers=kinds)
    cache = TeacherCache(path)
    ids = [i for i, _ in corpus[:6]]
    assert cache.batch(ids)["teachers"].tolist() == [kinds[i] for i in ids]
    with pytest.raises(ValueError, match="teachers"):
        build_cache(models["parent"], None, corpus, str(tmp_path / "d.safetensors"), max_seq_len=48, top_k=8,
                    teachers={corpus[0][0]: 7})


def test_the_window_marks_replay_by_what_each_teacher_learned() -> None:
    from adapters.training.loss import BOTH, NEW, PRIMARY
    from adapters.training.students import example_teachers

    sources = [["g1-new", "g0-old"], ["g0-old", "g0-other"]]  # HEAD's data (with its replay), its parent's
    kinds = example_teachers({"w-new"}, ["g1-new", "g0-old", "g0-other"], sources, stabilized=True)
    assert kinds == {"w-new": NEW, "g1-new": PRIMARY, "g0-old": BOTH, "g0-other": BOTH}
    first = example_teachers({"w-new"}, ["g0-old"], [["g0-old"]], stabilized=False)
    assert first == {"w-new": NEW, "g0-old": PRIMARY}
