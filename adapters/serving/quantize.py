"""Quantized GGUF through llama.cpp's own quantizer, and how far the result may drift.

Theory of operation. A generation is exported unquantized first (f16, ``export_gguf``) and that
file's parity with the torch model is judged as always (``adapters.serving.parity``, f16
tolerance). ``quantize_gguf`` then runs llama.cpp's quantizer (``llama_model_quantize``, the
same code as ``llama-quantize``; K-quants pick per-tensor types and fall back to a legacy type
for rows not a multiple of 256) from that file and writes the result atomically (a temporary
file beside the target, fsync, rename). ``check_quantized`` compares the two GGUFs with
llama.cpp on both sides, over the parity prompts: the teacher-forced logits at every position
(``max_logit_diff``, judged; ``top1_agreement``, the share of positions whose argmax is the
same, recorded) and the greedy continuations (``greedy_agreement``, recorded). Agreement is not
judged: with every logit within ``d`` an argmax can flip only where the reference's own margin
is at most ``2d``, so it adds nothing to the diff where logits are sharp, and where they are
flat (a random-weight model: near-ties everywhere) it flips without any fault (the bench's
0.48B random Llama at q4_k_m: max diff 1.13, top-1 agreement 54 %, greedy 0 of 14).

**Tolerances** (``QUANT_TOLERANCES``: max logit diff), absolute, in logits, set from the demo
model (0.94M parameters, trained, so its logits are sharp; its rows of 128 and 352 make K-quant
tensors fall back to q5_0 or q8_0): measured q8_0 0.29 (top-1 97.6 %), q6_k (all q8_0 there)
0.29, q5_k_m 0.90 (92.8 %), q4_k_m 1.77 (93.8 %) over 290 positions. The bounds leave about 2-3x
over that, while a broken file (wrong type, a tensor lost or misread) moves whole logits. A
quantized file out of tolerance fails its export like a parity failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import time
from pathlib import Path
from typing import Any, Iterator, Literal

import msgspec

from adapters.runtime.workspace import WorkspaceError

QuantType = Literal["q8_0", "q6_k", "q5_k_m", "q4_k_m"]
QUANT_TYPES: tuple[QuantType, ...] = ("q8_0", "q6_k", "q5_k_m", "q4_k_m")
# llama.cpp's ``llama_ftype`` values (llama.h), also ``general.file_type`` in the written GGUF.
SERVED_TYPES: tuple[str, ...] = ("f32", "f16", *QUANT_TYPES)  # config [model] gguf_type, "auto" aside
FTYPES: dict[str, int] = {"f32": 0, "f16": 1, "q8_0": 7, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
# max |logit diff| against the unquantized GGUF, over every teacher-forced position
QUANT_TOLERANCES: dict[str, float] = {"q8_0": 1.0, "q6_k": 1.0, "q5_k_m": 2.0, "q4_k_m": 3.5}


class QuantizeError(WorkspaceError):
    """A GGUF cannot be quantized as asked (exit 1, one line)."""


class QuantReport(msgspec.Struct, frozen=True, kw_only=True):
    """How the quantized ``model.gguf`` compares with the unquantized export it was made from."""

    quant_type: str
    source_dtype: str  # the unquantized export's type (f16)
    source_bytes: int
    max_logit_diff: float
    top1_agreement: float
    greedy_agreement: float
    prompts: int
    positions: int
    tolerance: float
    passed: bool
    seconds: float = 0.0  # quantizing (the check not included)

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"{self.quant_type} check {verdict} against the {self.source_dtype} export: max logit diff "
            f"{self.max_logit_diff:.3g} (tolerance {self.tolerance:g}); top-1 agreement {self.top1_agreement:.1%} "
            f"of {self.positions} positions, greedy agreement "
            f"{self.greedy_agreement:.0%} of {self.prompts} prompts"
        )


def check_quant_type(quant_type: str) -> QuantType:
    """The type, if llama.cpp's quantizer is used for it here; else ``QuantizeError`` (one line)."""
    if quant_type not in QUANT_TYPES:
        raise QuantizeError(f"unknown quantization type {quant_type!r}; one of {', '.join(QUANT_TYPES)}")
    return quant_type


def quantize_gguf(
    source: str | os.PathLike[str], out_path: str | os.PathLike[str], quant_type: str, *, threads: int = 0
) -> float:
    """Quantize the GGUF ``source`` (f32/f16) to ``out_path`` as ``quant_type``; the seconds taken.
    ``threads`` 0: llama.cpp's default (every core)."""
    import llama_cpp

    kind = check_quant_type(quant_type)
    src, out = Path(source), Path(out_path)
    if not src.is_file():
        raise QuantizeError(f"{src}: no such GGUF to quantize")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[kind]
    params.nthread = threads
    started = time.perf_counter()
    try:
        with _stderr_captured() as log:
            rc = llama_cpp.llama_model_quantize(os.fsencode(src), os.fsencode(tmp), ctypes.byref(params))
        if rc != 0 or not tmp.is_file():
            last = next((line for line in reversed(log) if line.strip()), "")
            raise QuantizeError(f"{src}: llama.cpp's quantizer failed ({kind}, return code {rc}): {last.strip()[:200]}")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return time.perf_counter() - started


@contextlib.contextmanager
def _stderr_captured() -> Iterator[list[str]]:
    """llama.cpp logs every tensor to fd 2: send it to a temporary file for the call; the list
    yielded holds its lines afterwards."""
    import sys
    import tempfile

    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", "replace").splitlines()[-20:])


def gguf_file_type(path: str | os.PathLike[str]) -> int:
    """``general.file_type`` of a GGUF (``FTYPES``' values), read with ``gguf``'s reader."""
    import gguf

    reader = gguf.GGUFReader(os.fspath(path))
    field = reader.get_field("general.file_type")
    if field is None:
        raise QuantizeError(f"{path}: no general.file_type")
    return int(field.parts[field.data[0]][0])


def _forced_and_greedy(llm: Any, ids: list[int], steps: int, eos: int | None) -> tuple[Any, list[int]]:
    import numpy as np

    llm.reset()
    llm.eval(ids)
    forced = np.asarray(llm.scores[: len(ids)]).copy()
    out: list[int] = []
    while len(out) < steps:
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(token)
        if token == eos:
            break
        llm.eval([token])
    return forced, out


def check_quantized(
    reference: str | os.PathLike[str],
    quantized: str | os.PathLike[str],
    quant_type: str,
    *,
    prompts: tuple[str, ...] | list[str] | None = None,
    greedy_tokens: int = 16,
    source_dtype: str = "f16",
    seconds: float = 0.0,
) -> QuantReport:
    """Compare ``quantized`` with the unquantized ``reference`` GGUF on the parity prompts, with
    llama.cpp on both sides (see the module doc)."""
    import numpy as np

    from adapters.serving.llama import load_llama
    from adapters.serving.parity import PROMPTS

    kind = check_quant_type(quant_type)
    tolerance = QUANT_TOLERANCES[kind]
    texts = list(PROMPTS if prompts is None else prompts)
    ref = load_llama(Path(reference), n_ctx=256, logits_all=True)
    try:
        encoded = [list(ref.tokenize(t.encode("utf-8"), add_bos=True, special=True)) for t in texts]
        encoded = [ids[: 256 - greedy_tokens - 1] for ids in encoded]
        eos = ref.token_eos()
        ref_runs = [_forced_and_greedy(ref, ids, greedy_tokens, eos) if ids else None for ids in encoded]
    finally:
        ref.close()
    quant = load_llama(Path(quantized), n_ctx=256, logits_all=True)
    worst, same, positions, agreed = 0.0, 0, 0, 0
    try:
        for ids, run in zip(encoded, ref_runs):
            if run is None:
                agreed += 1
                continue
            forced, greedy = _forced_and_greedy(quant, ids, greedy_tokens, eos)
            diff = float(np.abs(forced - run[0]).max())
            worst = diff if (math.isnan(diff) or diff > worst) else worst
            same += int((forced.argmax(-1) == run[0].argmax(-1)).sum())
            positions += len(ids)
            agreed += int(greedy == run[1])
    finally:
        quant.close()
    top1 = same / positions if positions else 1.0
    return QuantReport(
        quant_type=kind, source_dtype=source_dtype, source_bytes=Path(reference).stat().st_size,
        max_logit_diff=worst, top1_agreement=top1,
        greedy_agreement=agreed / len(texts) if texts else 1.0, prompts=len(texts), positions=positions,
        tolerance=tolerance, passed=worst <= tolerance,  # nan fails
        seconds=seconds,
    )
