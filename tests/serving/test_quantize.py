"""Quantized GGUF by llama.cpp's own quantizer: the file llama.cpp loads has the recorded type
and stays within its documented tolerance of the unquantized export; export.json records the
check and the generation's bytes on disk; an unknown type is refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import pytest

from adapters.serving.gguf_export import EXPORT_JSON, GGUF_NAME, ExportError, ExportRecord, export_gguf, export_generation
from adapters.serving.llama import load_llama
from adapters.serving.quantize import (
    FTYPES, QUANT_TOLERANCES, QuantizeError, check_quantized, gguf_file_type, quantize_gguf,
)


@pytest.fixture(scope="module")
def demo_f16(demo_genesis: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quant") / "f16.gguf"
    export_gguf(demo_genesis / "weights", out, dtype="f16")
    return out


def test_a_k_quant_loads_in_llama_cpp_with_its_type_and_within_tolerance(demo_f16: Path, tmp_path: Path) -> None:
    out = tmp_path / "q4.gguf"
    quantize_gguf(demo_f16, out, "q4_k_m", threads=1)
    assert gguf_file_type(out) == FTYPES["q4_k_m"] and out.stat().st_size < demo_f16.stat().st_size
    assert not list(tmp_path.glob(".*"))  # the temporary file was renamed, not left
    llm = load_llama(out, n_ctx=64)
    try:
        assert llm.tokenize(b"The zwob lives in Kirent.")
    finally:
        llm.close()
    report = check_quantized(demo_f16, out, "q4_k_m")
    assert report.passed, report.summary()
    assert report.tolerance == QUANT_TOLERANCES["q4_k_m"]
    assert 0 < report.max_logit_diff <= report.tolerance and report.positions > 100
    assert report.top1_agreement > 0.8  # the demo model's logits are sharp: recorded, measured 94 %


def test_an_unknown_quant_type_is_refused_in_one_line(demo_f16: Path, tmp_path: Path) -> None:
    with pytest.raises(QuantizeError, match="unknown quantization type 'q3_xyz'; one of q8_0, ") as exc:
        quantize_gguf(demo_f16, tmp_path / "x.gguf", "q3_xyz")
    assert "\n" not in str(exc.value) and not list(tmp_path.iterdir())


def test_export_generation_quantizes_from_a_parity_checked_f16_and_records_sizes(
    demo_genesis: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "G"
    shutil.copytree(demo_genesis / "weights", folder / "weights")
    record = export_generation(folder, dtype="q8_0")
    assert record.parity.passed and record.parity.tolerance == 0.1  # judged on the f16 export
    assert record.quantized is not None and record.quantized.passed, record.quantized
    assert record.dtype == "q8_0" and gguf_file_type(folder / GGUF_NAME) == FTYPES["q8_0"]
    assert record.quantized.source_bytes > record.bytes == (folder / GGUF_NAME).stat().st_size
    assert sorted(p.name for p in folder.iterdir()) == [EXPORT_JSON, GGUF_NAME, "weights"]  # no f16 left
    on_disk = msgspec.json.decode((folder / EXPORT_JSON).read_bytes(), type=ExportRecord)
    assert on_disk == record
    disk = record.disk
    weights = sum(p.stat().st_size for p in (folder / "weights").iterdir())
    assert (disk["weights"], disk["gguf"], disk["adapter"]) == (weights, record.bytes, 0)
    assert disk["total"] == weights + record.bytes
    with pytest.raises(ExportError, match="unknown GGUF type 'q2'"):
        export_generation(folder, dtype="q2")


def test_an_old_export_json_without_the_new_fields_still_decodes(demo_genesis: Path) -> None:
    raw = json.loads((demo_genesis / EXPORT_JSON).read_text())
    raw.pop("quantized", None)
    raw.pop("disk", None)
    record = msgspec.json.decode(json.dumps(raw).encode(), type=ExportRecord)
    assert record.quantized is None and record.disk == {}
