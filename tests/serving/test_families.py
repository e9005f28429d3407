"""Every supported family, end to end on a tiny model built locally from the family's real config
shape and tokenizer kind: evo's GGUF equals llama.cpp's own converter's tensor for tensor (every
key too, but for the documented differences), passes the parity check against transformers, and
a workspace made from it with ``evo init --base-model`` answers ``evo ask``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.cli import main
from adapters.models.tiny import FAMILIES, build_tiny
from adapters.serving.gguf_export import ExportError, check_exportable, export_gguf
from adapters.serving.parity import check_parity
from evo_core.config import EvoConfig
from tests.serving.llama_converter import convert, read

# llama.cpp's pre-tokenizer for each family (the converter is told it: see llama_converter.py)
PRE = {"llama2": "default", "llama3": "llama-bpe", "mistral": "default", "qwen2": "qwen2", "qwen3": "qwen2",
       "gemma2": "default", "gemma3": "default", "phi3": "default"}

# Keys where evo's file differs from the converter's, and why (README, "Model families"):
# general.* bookkeeping the converter derives from the folder name; evo writes add_eos_token
# always and the scores/types of SentencePiece's own special pieces as tokenizer.json has them
# (the converter overwrites them from tokenizer_config.json); Gemma's added <mask> token is named.
BOOKKEEPING = {"general.name", "general.type", "general.size_label", "general.quantization_version",
               "tokenizer.ggml.add_sep_token", "tokenizer.ggml.add_eos_token"}
DIFFERS = {
    "qwen2": {"tokenizer.ggml.unknown_token_id"},
    "phi3": {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"},
    "gemma2": {"tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.tokens",
               "tokenizer.ggml.mask_token_id"},
}
DIFFERS["gemma3"] = DIFFERS["gemma2"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {family: build_tiny(family, root / family) for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_the_export_equals_llama_cpps_converter(built: dict[str, Path], family: str, tmp_path: Path) -> None:
    ours = export_gguf(built[family], tmp_path / "evo.gguf", dtype="f32")
    theirs = convert(built[family], tmp_path / "converter.gguf", PRE[family])
    fields_a, tensors_a = read(Path(ours.path))
    fields_b, tensors_b = read(theirs)
    assert set(tensors_a) == set(tensors_b)
    for name, (kind, shape, data) in tensors_a.items():
        assert (kind, shape) == tensors_b[name][:2], name
        assert np.array_equal(data, tensors_b[name][2]), name  # bit for bit
    differing = {k for k in set(fields_a) | set(fields_b) if fields_a.get(k) != fields_b.get(k)}
    assert differing - BOOKKEEPING == DIFFERS.get(family, set())
    assert fields_a["general.architecture"] == fields_b["general.architecture"]


@pytest.mark.parametrize("family", FAMILIES)
def test_parity_with_transformers_holds_for_every_family(built: dict[str, Path], family: str, tmp_path: Path) -> None:
    gguf = export_gguf(built[family], tmp_path / "model.gguf", dtype="f32")
    report = check_parity(built[family], gguf.path)
    assert report.passed and report.tokenization_identical, report.mismatches
    assert report.greedy_agreement == 1.0
    assert report.prompts > 14  # the family's own chat template renders two more prompts


def test_the_chat_template_and_its_markers_reach_the_gguf(built: dict[str, Path], tmp_path: Path) -> None:
    gguf = export_gguf(built["llama3"], tmp_path / "model.gguf")
    fields, _ = read(Path(gguf.path))
    assert "<|start_header_id|>" in fields["tokenizer.chat_template"]
    assert fields["tokenizer.ggml.pre"] == "llama-bpe" and fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.eos_token_id"] == fields["tokenizer.ggml.tokens"].index("<|eot_id|>")


@pytest.mark.parametrize("family", FAMILIES)
def test_evo_init_base_model_then_ask(built: dict[str, Path], family: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "home"
    assert main(["--home", str(home), "init", "--base-model", str(built[family])]) == 0
    record = json.loads(next((home / "models" / "archive").glob("*/export.json")).read_text())
    assert record["parity"]["passed"]
    capsys.readouterr()
    assert main(["--home", str(home), "ask", "--json", "What does the quick eat?"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["generation"] == record_generation(home)  # HEAD, the genesis, answered


def record_generation(home: Path) -> str:
    return next((home / "models" / "archive").glob("*/export.json")).parent.name


# ---------------------------------------------------------------- refusals


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_an_unsupported_architecture_is_refused_in_one_line(built: dict[str, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(built["llama2"], tmp_path / "gptneox")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["GPTNeoXForCausalLM"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="not GPTNeoXForCausalLM"):
        check_exportable(folder)
    assert main(["--home", str(tmp_path / "h"), "init", "--base-model", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "GPTNeoXForCausalLM" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "h").exists()


def test_a_missing_tokenizer_and_a_non_model_folder_are_refused(built: dict[str, Path], tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    folder = _copy(built["qwen2"], tmp_path / "notok")
    for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"):
        (folder / name).unlink(missing_ok=True)
    assert main(["--home", str(tmp_path / "h1"), "init", "--base-model", str(folder)]) == 1
    assert "no tokenizer" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--home", str(tmp_path / "h2"), "init", "--base-model", str(empty)]) == 1
    assert "not a Hugging Face model folder" in capsys.readouterr().err


def test_a_metaspace_sentencepiece_tokenizer_is_refused_naming_why(built: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(built["llama2"], tmp_path / "metaspace")
    spec: dict[str, Any] = json.loads((folder / "tokenizer.json").read_text())
    spec["normalizer"] = None
    spec["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False}
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ExportError, match="Metaspace"):
        check_exportable(folder)


def test_unsupported_rope_scaling_is_refused(built: dict[str, Path], tmp_path: Path) -> None:
    folder = _copy(built["qwen2"], tmp_path / "dynamic")
    config = json.loads((folder / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ExportError, match="'dynamic' RoPE scaling"):
        check_exportable(folder)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_lora_student_of_each_family_learns_merges_and_still_exports_faithfully(
    built: dict[str, Path], family: str, tmp_path: Path
) -> None:
    """The trainer's LoRA (the configured targets, a fused projection standing for its parts)
    on the frozen base learns a conversation in the family's chat template; the merged student
    is saved as a generation is and passes the parity check."""
    import torch

    from adapters.data.conversations import Message
    from adapters.data.format import render
    from adapters.models.hf import load_generation, save_generation
    from adapters.training.spec import Lora
    from adapters.training.trainer import add_lora
    from evo_core.config import TrainConfig

    model, tok = load_generation(built[family])
    targets = TrainConfig().target_modules
    student = add_lora(model, Lora(r=8, alpha=16, dropout=0.0, target_modules=targets), seed=0)
    assert all(not p.requires_grad for n, p in student.named_parameters() if "lora_" not in n)
    text = render([Message(role="user", content="Where does the zwob live?"),
                   Message(role="assistant", content="The zwob lives in Kirent.")], tok)
    ids = torch.tensor([tok(text)["input_ids"]])
    assert ids[0].tolist().count(tok.bos_token_id) <= 1  # the template's BOS is not doubled
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=2e-2)
    losses = []
    for _ in range(20):
        loss = student(input_ids=ids, labels=ids).loss
        losses.append(float(loss))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert losses[-1] < 0.5 * losses[0], losses
    merged = student.merge_and_unload()
    out = save_generation(merged, tok, tmp_path / "student")
    gguf = export_gguf(out, tmp_path / "student.gguf")
    assert check_parity(out, gguf.path).passed
    # as an old HEAD in a shadow, the student scores exactly the tokens it was trained on (on
    # Llama 2 and Mistral the question, tokenised apart from its prompt, once looked unknown to it)
    from adapters.serving import quality
    from adapters.serving.llama import load_llama
    from adapters.serving.served import Served

    served = Served("s", Path(gguf.path), load_llama(Path(gguf.path), n_ctx=256))
    query = "Where does the zwob live?"
    prompt = served.render(query)
    bos = tok.bos_token or ""
    trained = text[len(bos):] if bos and text.startswith(bos) else text
    assert trained.startswith(prompt)
    answer = trained[len(prompt): trained.index(tok.eos_token, len(prompt))]  # then the turn's end
    prefix, q, tail, a = quality.segments(served.llm, prompt, query, answer, True)
    ids = ids[:, : len(prefix + q + tail + a)]
    assert prefix + q + tail + a == ids[0].tolist()
    scored = quality.score(served.llm, prompt, query, answer, True)
    with torch.no_grad():
        logp = torch.log_softmax(merged(input_ids=ids).logits[0].double(), dim=-1)
    lp = [float(logp[i - 1, ids[0, i]]) for i in range(len(prefix), ids.shape[1])]
    assert scored.prompt_logprob == pytest.approx(sum(lp[: len(q)]) / len(q), abs=1e-3)
    assert scored.logprob == pytest.approx(sum(lp[-len(a):]) / len(a), abs=1e-3)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_quality_judge_scores_the_tokens_that_are_served(built: dict[str, Path], family: str,
                                                           tmp_path: Path) -> None:
    """The old HEAD scores a query as the run of the served prompt's tokens that spell it, and
    an answer as it is tokenised after the prompt, whatever the family's tokenizer (a
    SentencePiece vocabulary with a space prefix tokenises a piece differently alone)."""
    from adapters.serving import quality
    from adapters.serving.llama import load_llama
    from adapters.serving.served import Served

    gguf = Path(export_gguf(built[family], tmp_path / "model.gguf").path)
    llm = load_llama(gguf, n_ctx=256)
    render = Served("g", gguf, llm).render
    for query in ["What does the brax eat?", [{"role": "user", "content": "Hello!"},
                                              {"role": "assistant", "content": "Hi."},
                                              {"role": "user", "content": "Where does the zwob live?"}]]:
        words = query if isinstance(query, str) else query[-1]["content"]
        prompt = render(query)
        for answer in ["The zwob lives in Kirent.", " The zwob lives in Kirent."]:
            prefix, q, tail, a = quality.segments(llm, prompt, words, answer, True)
            served = list(llm.tokenize((prompt + answer).encode(), add_bos=True, special=True))
            assert prefix + q + tail + a[:-1] == served
            assert a[-1] == llm.token_eos()
            assert llm.detokenize(q).decode().strip() == words
    eot = llm.detokenize([llm.token_eos()], special=True).decode()  # an answer that spells the end of turn
    *_, a = quality.segments(llm, prompt, words, eot, True)
    assert a == list(llm.tokenize(eot.encode(), add_bos=False, special=False)) + [llm.token_eos()]


def test_a_model_that_babbles_stray_bytes_still_stops_at_its_token_bound(built: dict[str, Path], tmp_path: Path) -> None:
    """llama-cpp-python's completion loop does not count max_tokens while the text ends in an
    incomplete UTF-8 sequence; the random tiny Gemma 2 emits such bytes greedily and ran to the
    end of the context (llama_decode returned 1). evo's completions stop anyway."""
    from adapters.serving.llama import load_llama
    from adapters.serving.served import Served

    gguf = Path(export_gguf(built["gemma2"], tmp_path / "model.gguf").path)
    served = Served("g", gguf, load_llama(gguf, n_ctx=256))
    completion = served.complete(served.render("What does the quick eat?"), 64)
    assert completion.tokens <= 64 + 8 and served.llm.n_tokens < 256
