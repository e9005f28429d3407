"""GGUF export and the parity check on the demo model: llama.cpp computes what transformers
computes (logits, greedy tokens, tokenization), the file says what it is, and the check can fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import msgspec
import pytest

from adapters.serving import gguf_export
from adapters.serving.gguf_export import ExportError, export_gguf
from adapters.serving.llama import load_llama
from adapters.serving.parity import PROMPTS, TOLERANCE, ParityReport, check_parity, tolerance_for
from adapters.runtime.workspace import WorkspaceError

TRICKY = (
    "",
    " ",
    "  ",
    "double  space",
    " leading and trailing ",
    "new\nline",
    "\n\n\n",
    "tab\tand\r\nCRLF",
    "0123456789 42 3.14 1,000,000",
    "café Zürich naïve",
    "東京 日本語 한국어",
    "emoji 🦙🚀 and ZWJ 👩‍💻",
    "<|user|>hi<|end|><|assistant|>",
    "not special: <|nope|> <| user |>",
)


@pytest.fixture(scope="module")
def f32_report(demo_genesis: Path, demo_gguf: Path) -> ParityReport:
    return check_parity(demo_genesis / "weights", demo_gguf)


# ---------------------------------------------------------------- parity


def test_f32_gguf_matches_transformers_on_the_fixed_prompts(f32_report: ParityReport) -> None:
    r = f32_report
    assert r.passed, r.mismatches
    assert r.tokenization_identical and r.greedy_agreement == 1.0 and r.greedy_ties == 0
    assert r.prompts == len(PROMPTS) and r.mismatches == ()
    assert 0.0 <= r.max_logit_diff <= TOLERANCE == r.tolerance
    assert r.max_logit_diff < 1e-4  # measured ~1e-5: far inside the tolerance


def test_greedy_continuations_are_identical_and_not_trivial(demo_model: tuple[Any, Any], demo_gguf: Path) -> None:
    """The demo answers a genesis question the same way through both engines."""
    from adapters.serving.parity import _greedy_hf, _greedy_llama

    model, tok = demo_model
    ids = tok(PROMPTS[0])["input_ids"]
    llm = load_llama(demo_gguf, logits_all=True)
    llm.eval(ids)
    ll, _ = _greedy_llama(llm, 16, tok.eos_token_id)
    hf, _ = _greedy_hf(model, ids, 16, tok.eos_token_id)
    assert ll == hf and ll[-1] == tok.eos_token_id
    assert tok.decode(hf, skip_special_tokens=True).startswith("The quick eats")


def test_tokenization_is_identical_on_tricky_strings(demo_model: tuple[Any, Any], demo_gguf: Path) -> None:
    _, tok = demo_model
    llm = load_llama(demo_gguf)
    for text in TRICKY:
        for add in (True, False):
            hf = tok(text, add_special_tokens=add)["input_ids"]
            assert llm.tokenize(text.encode(), add_bos=add, special=True) == hf, (text, add)
        plain = tok(text, add_special_tokens=False)["input_ids"]
        assert llm.detokenize(plain, special=True).decode() == text  # byte-level: lossless both ways
    assert llm.tokenize(b"", add_bos=True, special=True) == [tok.bos_token_id]


def test_the_prompt_set_covers_the_hard_cases() -> None:
    assert "" in PROMPTS and " " in PROMPTS
    joined = "".join(PROMPTS)
    assert "  " in joined and "\n" in joined and any(c.isdigit() for c in joined)
    assert any(ord(c) > 127 for c in joined) and "<|assistant|>" in joined


# ---------------------------------------------------------------- the file


def test_gguf_metadata_reads_back(demo_genesis: Path, demo_gguf: Path, demo_model: tuple[Any, Any]) -> None:
    import gguf

    _, tok = demo_model
    config = json.loads((demo_genesis / "weights" / "config.json").read_text())
    fields = gguf.GGUFReader(demo_gguf).fields

    def value(key: str) -> Any:
        return fields[key].contents()

    assert value("general.architecture") == "llama"
    assert value("llama.context_length") == config["max_position_embeddings"] == 256
    assert value("llama.embedding_length") == config["hidden_size"]
    assert value("llama.block_count") == config["num_hidden_layers"]
    assert value("llama.feed_forward_length") == config["intermediate_size"]
    assert value("llama.attention.head_count") == config["num_attention_heads"]
    assert value("llama.attention.head_count_kv") == config["num_key_value_heads"]
    assert value("llama.rope.dimension_count") == config["hidden_size"] // config["num_attention_heads"]
    assert value("llama.rope.freq_base") == config["rope_parameters"]["rope_theta"]
    assert value("llama.attention.layer_norm_rms_epsilon") == pytest.approx(config["rms_norm_eps"])
    assert value("general.file_type") == 0
    assert value("tokenizer.ggml.model") == "gpt2" and value("tokenizer.ggml.pre") == "gpt-2"
    assert value("tokenizer.ggml.bos_token_id") == tok.bos_token_id
    assert value("tokenizer.ggml.eos_token_id") == tok.eos_token_id
    assert value("tokenizer.ggml.padding_token_id") == tok.pad_token_id
    assert value("tokenizer.ggml.add_bos_token") is True and value("tokenizer.ggml.add_eos_token") is False
    tokens = value("tokenizer.ggml.tokens")
    assert len(tokens) == len(tok) == config["vocab_size"]
    assert tokens == [tok.convert_ids_to_tokens(i) for i in range(len(tok))]
    types = value("tokenizer.ggml.token_type")
    specials = {tok.convert_tokens_to_ids(t) for t in tok.all_special_tokens}
    assert len(specials) == 6
    assert {i for i, t in enumerate(types) if t == gguf.TokenType.CONTROL} == specials
    assert value("tokenizer.chat_template") == tok.chat_template
    assert len(value("tokenizer.ggml.merges")) > 0
    names = {t.name for t in gguf.GGUFReader(demo_gguf).tensors}
    assert {"token_embd.weight", "output.weight", "output_norm.weight", "blk.1.attn_q.weight"} <= names


def test_transformers_loads_the_gguf_back_exactly(demo_gguf: Path, demo_model: tuple[Any, Any]) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    model, tok = demo_model
    back = AutoModelForCausalLM.from_pretrained(demo_gguf.parent, gguf_file=demo_gguf.name, dtype=torch.float32)
    ids = torch.tensor([tok(PROMPTS[4])["input_ids"]])
    with torch.no_grad():
        assert torch.equal(back(ids).logits, model(ids).logits)


def test_f16_and_q8_0_exports_pass_within_their_looser_tolerance(
    demo_genesis: Path, tmp_path: Path, f32_report: ParityReport
) -> None:
    sizes = {}
    for dtype in ("f16", "q8_0"):
        info = export_gguf(demo_genesis / "weights", tmp_path / f"{dtype}.gguf", dtype=dtype)
        report = check_parity(demo_genesis / "weights", info.path, tolerance=tolerance_for(dtype))
        assert report.passed, (dtype, report)
        assert f32_report.max_logit_diff < report.max_logit_diff <= tolerance_for(dtype)
        assert report.greedy_agreement >= 0.9 and report.greedy_ties == round((1 - report.greedy_agreement) * 14)
        sizes[dtype] = info.bytes
        if dtype == "f16":
            # measured: 7e-3 on the 166k demo model, 1.0e-2 on the 0.94M one
            assert report.greedy_agreement == 1.0 and report.max_logit_diff < 0.25 * tolerance_for(dtype)
    assert sizes["q8_0"] < sizes["f16"] < (demo_genesis / "weights" / "model.safetensors").stat().st_size


# ---------------------------------------------------------------- the check can fail



def test_the_parity_check_never_holds_both_models_at_once(
    demo_genesis: Path, demo_gguf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama.cpp's side runs and lets go of the GGUF before the torch reference is loaded (a
    0.5B model's float32 reference and f16 GGUF together are 2.9 GB), and the verdict is the
    same as ever: the order changes nothing but the memory."""
    import adapters.models.hf as hf
    import adapters.serving.llama as llama

    events: list[str] = []
    real_llama, real_model = llama.load_llama, hf.load_generation

    def load_llama(*args: Any, **kwargs: Any) -> Any:
        llm = real_llama(*args, **kwargs)
        close = llm.close

        def closing() -> None:
            events.append("llama.cpp closed")
            close()

        llm.close = closing
        events.append("llama.cpp loaded")
        return llm

    def load_generation(*args: Any, **kwargs: Any) -> Any:
        events.append("torch loaded")
        return real_model(*args, **kwargs)

    monkeypatch.setattr(llama, "load_llama", load_llama)
    monkeypatch.setattr(hf, "load_generation", load_generation)
    report = check_parity(demo_genesis / "weights", demo_gguf)
    assert events == ["llama.cpp loaded", "llama.cpp closed", "torch loaded"]
    assert report.passed and report.greedy_agreement == 1.0 and report.max_logit_diff < 1e-4

def test_a_wrong_permutation_fails_the_parity_check(
    demo_genesis: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gguf_export, "permute_qk", lambda w, n_head, n_head_kv=None: w)
    info = export_gguf(demo_genesis / "weights", tmp_path / "broken.gguf")
    report = check_parity(demo_genesis / "weights", info.path)
    assert not report.passed
    assert report.max_logit_diff > 100 * TOLERANCE and report.tokenization_identical
    assert any(m.startswith("logits") for m in report.mismatches)


def test_a_tokenizer_fault_fails_the_parity_check(
    demo_genesis: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GGUF whose tokenizer adds no BOS: same weights, different ids, so the check must fail."""
    real = gguf_export._add_tokenizer

    def no_bos(writer: Any, folder: Path, n_vocab: int) -> None:
        real(writer, folder, n_vocab)
        writer.add_add_bos_token(False)  # overwrites the key (gguf logs a warning)

    monkeypatch.setattr(gguf_export, "_add_tokenizer", no_bos)
    info = export_gguf(demo_genesis / "weights", tmp_path / "nobos.gguf")
    report = check_parity(demo_genesis / "weights", info.path)
    assert not report.passed and not report.tokenization_identical


# ---------------------------------------------------------------- refusals and atomicity


def test_unsupported_architecture_is_a_one_line_export_error(demo_genesis: Path, tmp_path: Path) -> None:
    folder = tmp_path / "gpt2"
    shutil.copytree(demo_genesis / "weights", folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ExportError) as exc:
        export_gguf(folder, tmp_path / "x.gguf")
    assert isinstance(exc.value, WorkspaceError)
    assert "GPT2LMHeadModel" in str(exc.value) and "\n" not in str(exc.value)
    assert not list(tmp_path.glob("*.gguf*"))


def test_a_tokenizer_llama_cpp_would_split_differently_is_refused(demo_genesis: Path, tmp_path: Path) -> None:
    folder = tmp_path / "prefix-space"
    shutil.copytree(demo_genesis / "weights", folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["pre_tokenizer"]["add_prefix_space"] = True
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(ExportError, match="byte-level BPE"):
        export_gguf(folder, tmp_path / "x.gguf")


def test_a_failed_export_leaves_the_previous_file_whole(
    demo_genesis: Path, demo_gguf: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "model.gguf"
    shutil.copy(demo_gguf, out)
    before = out.read_bytes()

    def boom(*args: Any) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(gguf_export, "_add_tensors", boom)
    with pytest.raises(RuntimeError):
        export_gguf(demo_genesis / "weights", out)
    assert out.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]


def test_export_info_describes_the_file(demo_genesis: Path, tmp_path: Path) -> None:
    from adapters.hashing import hash_file

    info = export_gguf(demo_genesis / "weights", tmp_path / "m.gguf", dtype="f16")
    assert info.path == str(tmp_path / "m.gguf") and info.dtype == "f16"
    assert info.bytes == (tmp_path / "m.gguf").stat().st_size and info.seconds > 0
    assert info.blake3 == hash_file(tmp_path / "m.gguf")
    with pytest.raises(ExportError, match="unknown GGUF dtype"):
        export_gguf(demo_genesis / "weights", tmp_path / "m.gguf", dtype="q4")  # type: ignore[arg-type]


def test_llama_cpp_reads_the_gguf_logits_row_for_row(demo_model: tuple[Any, Any], demo_gguf: Path) -> None:
    """``load_llama``'s settings: every position's logits (``logits_all``), f32 KV cache."""
    import torch

    model, tok = demo_model
    ids = tok(PROMPTS[3])["input_ids"]
    llm = load_llama(demo_gguf, logits_all=True)
    llm.eval(ids)
    with torch.no_grad():
        hf = model(torch.tensor([ids])).logits[0].numpy()
    assert np.abs(np.asarray(llm.scores[: len(ids)]) - hf).max() < 1e-4


# ---------------------------------------------------------------- evo init and evo export


def test_evo_init_demo_leaves_a_servable_genesis(demo_genesis: Path) -> None:
    from adapters.hashing import hash_file
    from adapters.serving.gguf_export import EXPORT_JSON, ExportRecord

    record = msgspec.json.decode((demo_genesis / EXPORT_JSON).read_bytes(), type=ExportRecord)
    assert record.gguf == "model.gguf" and record.dtype == "f32"
    assert record.parity.passed and record.parity.max_logit_diff <= TOLERANCE
    assert record.blake3 == hash_file(demo_genesis / "model.gguf")
    from adapters.models.hf import weights_hash

    assert record.weights_hash == weights_hash(demo_genesis / "weights")
    assert "model.gguf" in (demo_genesis / "GENESIS.md").read_text()


@pytest.fixture
def workspace_copy(demo_workspace: Path, tmp_path: Path) -> Path:
    home = tmp_path / "home"
    shutil.copytree(demo_workspace, home, symlinks=True)
    return home


def test_evo_export_rewrites_model_gguf_and_records_parity(
    workspace_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli.conftest import Evo
    from tests.fixtures_models import GENESIS

    folder = workspace_copy / "models" / "archive" / GENESIS
    (folder / "model.gguf").unlink()
    (folder / "export.json").unlink()
    evo = Evo(workspace_copy, capsys)
    r = evo("export", GENESIS[:8], "--dtype", "f16")  # a unique prefix will do
    assert r.code == 0, r.err
    assert r.out.splitlines()[1].startswith("parity passed: max logit diff")
    record = json.loads((folder / "export.json").read_text())
    assert record["dtype"] == "f16" and record["parity"]["passed"] and record["parity"]["tolerance"] == 0.1
    assert (folder / "model.gguf").stat().st_size == record["bytes"]
    r = evo("export", GENESIS, "--json")
    assert r.code == 0
    out = json.loads(r.out)
    assert out["generation"] == GENESIS and out["dtype"] == "f32" and out["parity"]["passed"]
    assert out["parity"]["max_logit_diff"] <= TOLERANCE and out["path"] == str(folder / "model.gguf")
    assert evo("verify").code == 0


def test_evo_export_makes_a_k_quant_through_llama_cpp_and_prints_its_check(
    workspace_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli.conftest import Evo
    from tests.fixtures_models import GENESIS

    folder = workspace_copy / "models" / "archive" / GENESIS
    evo = Evo(workspace_copy, capsys)
    r = evo("export", GENESIS, "--dtype", "q4_k_m")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[1].startswith("parity passed") and lines[2].startswith("q4_k_m check passed against the f16 export")
    record = json.loads((folder / "export.json").read_text())
    assert record["dtype"] == "q4_k_m" and record["quantized"]["passed"]
    assert not list(folder.glob(".model.gguf.*"))  # the f16 source is gone
    assert load_llama(folder / "model.gguf")("hi", max_tokens=2)["choices"]


def test_evo_export_refuses_a_generation_without_weights_or_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.cli.conftest import Evo
    from tests.fixtures_models import GENESIS

    evo = Evo(tmp_path / "home", capsys)
    assert evo("init").code == 0  # no model: the genesis has no weights
    r = evo("export", GENESIS)
    assert r.code == 1 and r.err.count("\n") == 1 and "no weights to export" in r.err
    assert not (tmp_path / "home" / "models" / "archive" / GENESIS / "model.gguf").exists()
    r = evo("export", "Nobody-G007")
    assert r.code == 1 and r.err.count("\n") == 1 and "no archived generation 'Nobody-G007'" in r.err
    assert evo("export", GENESIS, "--dtype", "q4").code == 2


def test_evo_export_exits_1_on_failed_parity_and_keeps_the_evidence(
    workspace_copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.cli.conftest import Evo
    from tests.fixtures_models import GENESIS

    monkeypatch.setattr(gguf_export, "permute_qk", lambda w, n_head, n_head_kv=None: w)
    r = Evo(workspace_copy, capsys)("export", GENESIS)
    assert r.code == 1
    errors = [line for line in r.err.splitlines() if line.startswith("evo: error:")]
    assert len(errors) == 1 and "FAIL - export parity" in errors[0]
    assert "parity FAILED" in r.out
    record = json.loads((workspace_copy / "models" / "archive" / GENESIS / "export.json").read_text())
    assert record["parity"]["passed"] is False and record["parity"]["max_logit_diff"] > TOLERANCE
