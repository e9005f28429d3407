"""Does the GGUF compute what the Hugging Face model computes? Measured, never assumed.

``check_parity`` runs the torch model (transformers, float32) and the GGUF (llama-cpp-python
through ``load_llama``: f32 KV cache) on the same fixed prompts and records

- ``tokenization_identical``: llama.cpp's ``tokenize`` gives HF's ids for every prompt, with
  the special tokens added (BOS) and without, special-token text parsed as HF parses it;
- ``max_logit_diff``: the largest ``|logit_hf - logit_gguf|`` over every prompt, position and
  vocabulary entry (HF's ids are fed to both, so a tokenizer fault cannot hide a weight fault),
  and over every greedy step up to the first where the two continuations part;
- ``greedy_agreement``: the fraction of prompts whose greedy continuations (up to
  ``greedy_tokens``, stopping at EOS, same rule both sides) are identical.

It passes when the tokenization is identical, the logit difference is within the tolerance
(``nan`` fails) and every greedy continuation agrees, except where the two part at a near-tie:
a step where the HF model's own margin between its choice and llama.cpp's is at most twice the
tolerance (``greedy_ties``). With logits within ``tol`` a disagreement can only happen at
such a step, so this excuses what the tolerance already admits and nothing else; with f32
(``tol`` 1e-3) that is a tie to 2e-3 and none happens on the demo prompts
(``greedy_agreement`` 1.0).

**Tolerances** (``TOLERANCES``), absolute, in logits: f32 ``1e-3``: measured 5e-6 on the demo model (float32 both sides, summation order
the only difference); the margin covers other CPUs, thread counts and larger models, while a
real fault (a wrong permutation, a missing norm, a shifted token) shows up as whole logits.
f16 and q8_0 round the weights themselves (f16 keeps ~3 decimal digits, q8_0 ~2 per block of
32), so their differences are those roundings carried through the network (measured on the
demo model: f16 7e-3, q8_0 0.22, where the empty prompt's continuation parts at a near-tie);
they get ``0.1`` and ``0.5``. Serve f32 or f16; q8_0 is for size experiments.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from adapters.runtime.activity import Progress, silent

TOLERANCES = {"f32": 1e-3, "f16": 0.1, "q8_0": 0.5}
TOLERANCE = TOLERANCES["f32"]

# The demo world's questions as the agent sees them (the chat template around them), then the
# tokenizer's hard cases.
PROMPTS: tuple[str, ...] = (
    "<|user|>What does the quick eat?<|end|><|assistant|>",
    "<|user|>Which city is home to the zwob?<|end|><|assistant|>",
    "<|user|>Tell me where the sneel lives.<|end|><|assistant|>",
    "<|system|>Be brief.<|end|><|user|>What colour is the blurk?<|end|><|assistant|>",
    "<|user|>What does the quick eat?<|end|><|assistant|>The quick eats grass.<|end|>"
    "<|user|>And the zwob?<|end|><|assistant|>",
    "The zwob lives in Kirent.",
    "",
    " ",
    "two  spaces,   three   and a trailing space ",
    "line one\nline two\n\n\tindented\r\n",
    "digits 0 7 42 1234567 3.14159 -8e10 2024-06-01",
    "non-ASCII: café naïve Zürich 東京 Ωμέγα 🦙🚀 — “quotes”",
    "<|user|><|end|>",
    "it's they're we'll I'd",
)


class ParityReport(msgspec.Struct, frozen=True, kw_only=True):
    max_logit_diff: float
    greedy_agreement: float
    tokenization_identical: bool
    prompts: int
    tolerance: float
    passed: bool
    greedy_ties: int = 0  # prompts whose continuations part at a near-tie (see the module doc)
    mismatches: tuple[str, ...] = ()  # the first few differences, for a human

    def summary(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"parity {verdict}: max logit diff {self.max_logit_diff:.3g} (tolerance {self.tolerance:g}), "
            f"greedy agreement {self.greedy_agreement:.0%} of {self.prompts} prompts, "
            f"tokenization {'identical' if self.tokenization_identical else 'DIFFERENT'}"
        )


def tolerance_for(dtype: str) -> float:
    return TOLERANCES[dtype]


def _greedy_hf(model: Any, ids: list[int], steps: int, eos: int | None) -> tuple[list[int], list[Any]]:
    """Greedy decoding with transformers' KV cache (each step feeds one token, as llama.cpp
    does): ``steps`` forward passes of one token instead of ``steps`` of the whole sequence."""
    import torch

    out: list[int] = []
    rows: list[Any] = []
    with torch.no_grad():
        result = model(torch.tensor([ids]), use_cache=True)
        for _ in range(steps):
            row = result.logits[0, -1].float().numpy()
            rows.append(row)
            token = int(row.argmax())
            out.append(token)
            if token == eos or len(out) == steps:
                break
            result = model(torch.tensor([[token]]), cache=result.cache, use_cache=True)
    return out, rows


def chat_prompts(tokenizer: Any) -> tuple[str, ...]:
    """The demo questions rendered by the model's own chat template (what evo trains on and
    serves), so a family's markers are checked as they are used; none without a template."""
    from adapters.data.conversations import Message
    from adapters.data.format import render

    if not getattr(tokenizer, "chat_template", None):
        return ()
    turns = (
        [Message(role="user", content="What does the quick eat?")],
        [Message(role="user", content="What does the quick eat?"), Message(role="assistant", content="The quick eats grass."),
         Message(role="user", content="And the zwob?")],
    )
    return tuple(render(t, tokenizer, add_generation_prompt=True) for t in turns)


def _greedy_llama(llm: Any, steps: int, eos: int | None) -> tuple[list[int], list[Any]]:
    """Continue from what ``llm`` has evaluated (its last logits row)."""
    out, rows = [], []
    for _ in range(steps):
        row = llm.scores[llm.n_tokens - 1].copy()
        rows.append(row)
        token = int(row.argmax())
        out.append(token)
        if token == eos or len(out) == steps:
            break
        llm.eval([token])
    return out, rows


class _Served(NamedTuple):
    """llama.cpp's side of one prompt: its tokenization with and without the special tokens
    added, the logits rows of the prompt, its greedy continuation and that continuation's rows."""

    tokens: tuple[list[int], ...]
    logits: Any  # None: nothing was run (no ids)
    cont: list[int]
    rows: list[Any]


def _tolerance_floor(folder: Path) -> float:
    """The family's floor (``Family.tolerance_floor``: GELU through ggml's f16 table)."""
    import json

    from adapters.serving.gguf_families import FAMILIES

    try:
        archs = json.loads((folder / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        return 0.0
    return max((FAMILIES[a].tolerance_floor for a in archs if a in FAMILIES), default=0.0)


def check_parity(
    hf_dir: str | os.PathLike[str],
    gguf_path: str | os.PathLike[str],
    *,
    prompts: tuple[str, ...] | list[str] = PROMPTS,
    tolerance: float = TOLERANCE,
    greedy_tokens: int = 16,
    progress: Progress = silent,
) -> ParityReport:
    """Compare the HF folder ``hf_dir`` with ``gguf_path`` on ``prompts`` (see the module doc).
    llama.cpp's side runs first and keeps its logits rows; the torch model is loaded only after
    llama.cpp has let go of the GGUF, so the two models are never in memory together (on the
    ~0.5B bench model: the float32 reference 1.9 GB, the f16 GGUF 0.95 GB). Progress: ``load``
    (llama.cpp, then torch) and ``parity`` over both passes (2 x the prompts)."""
    import numpy as np
    import torch

    from adapters.models.hf import load_generation, load_tokenizer
    from adapters.runtime import heap
    from adapters.serving.llama import load_llama

    tok = load_tokenizer(hf_dir)
    tolerance = max(tolerance, _tolerance_floor(Path(hf_dir)))
    prompts = (*prompts, *(p for p in chat_prompts(tok) if p not in prompts))
    encoded = [tok(p)["input_ids"] for p in prompts]
    plain = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
    eos = tok.eos_token_id
    n_ctx = max(64, max((len(ids) for ids in encoded), default=0) + greedy_tokens + 1)
    total = 2 * len(prompts)
    progress("load", 0, 2)
    # every core this process may use: llama-cpp-python's default is half of them (one on two
    # cores), which made the check of a 0.5B model take minutes
    llm = load_llama(Path(gguf_path), n_ctx=n_ctx, logits_all=True, n_threads=len(os.sched_getaffinity(0)))
    progress("load", 1, 2)
    progress("parity", 0, total)
    served: list[_Served] = []
    try:
        for done, (prompt, ids) in enumerate(zip(prompts, encoded), 1):
            tokens = tuple(list(llm.tokenize(prompt.encode("utf-8"), add_bos=add, special=True)) for add in (True, False))
            if ids:  # else nothing to run (a tokenizer that adds no BOS, empty text)
                llm.reset()
                llm.eval(ids)
                logits = np.array(llm.scores[: len(ids)])  # a copy: the buffer is reused
                served.append(_Served(tokens, logits, *_greedy_llama(llm, greedy_tokens, eos)))
            else:
                served.append(_Served(tokens, None, [], []))
            progress("parity", done, total)
    finally:
        close = getattr(llm, "close", None)
        if close is not None:
            close()
    del llm
    heap.release()  # what earlier steps freed (a GGUF export's buffers), before the reference's peak
    model, _ = load_generation(hf_dir)
    progress("load", 2, 2)
    mismatches: list[str] = []
    tokenization_ok, agreed, worst, ties, untied = True, 0, 0.0, 0, 0
    for done, (prompt, ids, plain_ids, ll) in enumerate(zip(prompts, encoded, plain, served), 1):
        for add, hf_ids, ll_ids in ((True, ids, ll.tokens[0]), (False, plain_ids, ll.tokens[1])):
            if ll_ids != list(hf_ids):
                tokenization_ok = False
                mismatches.append(f"tokenize {prompt!r} (specials {add}): hf {hf_ids} vs llama.cpp {ll_ids}")
        if not ids:
            agreed += 1
            progress("parity", len(prompts) + done, total)
            continue
        with torch.no_grad():
            hf_logits = model(torch.tensor([ids])).logits[0].float().numpy()
        diffs = [float(np.abs(hf_logits - ll.logits).max())]
        hf_cont, hf_rows = _greedy_hf(model, ids, greedy_tokens, eos)
        ll_cont, ll_rows = ll.cont, ll.rows
        for i, (a, b) in enumerate(zip(hf_rows, ll_rows)):
            diffs.append(float(np.abs(a - b).max()))
            if hf_cont[i] != ll_cont[i]:
                break
        diff = max(diffs)
        if math.isnan(diff) or diff > worst:  # a nan stays: it must fail
            worst = diff
        if hf_cont == ll_cont:
            agreed += 1
        else:
            step = next((i for i, (a, b) in enumerate(zip(hf_cont, ll_cont)) if a != b), None)
            margin = math.inf if step is None else float(hf_rows[step][hf_cont[step]] - hf_rows[step][ll_cont[step]])
            if margin <= 2 * tolerance:
                ties += 1
            else:
                untied += 1
            mismatches.append(
                f"greedy {prompt!r}: hf {hf_cont} vs llama.cpp {ll_cont} (hf margin {margin:.3g} at step {step})"
            )
        if not diff <= tolerance:
            mismatches.append(f"logits {prompt!r}: max diff {diff:.3g} > {tolerance:g}")
        progress("parity", len(prompts) + done, total)
    agreement = agreed / len(prompts) if prompts else 1.0
    return ParityReport(
        max_logit_diff=worst,
        greedy_agreement=agreement,
        tokenization_identical=tokenization_ok,
        prompts=len(prompts),
        tolerance=tolerance,
        passed=tokenization_ok and untied == 0 and worst <= tolerance,
        greedy_ties=ties,
        mismatches=tuple(mismatches[:8]),
    )
