"""Running a ``ProbeSet`` on a generation's ``model.gguf`` (llama.cpp): the metrics' measurement.

The formulas are in ``adapters.evaluation.probes``. Here: each model is loaded once through
``load_llama`` (f32 KV cache; ``logits_all=True`` so a teacher-forced pass yields every
position's logits) and answers every probe. Each answer starts from an empty KV cache (an
answer never depends on the probes before it) and is decoded greedily: the prompt is read in
one batch, then the arg-max token is appended until an end-of-generation token or
``max_tokens``. The tone probe reads ``prompt + HEAD's answer`` in one batch on both models, the
same way, so identical weights give identical logits and a drift of exactly 0.0; when the two
paths name the same file (or files with equal blake3) one loaded model serves as both.

One thread by default (``n_threads=1``): the demo model is so small that a second thread buys
nothing, and on a busy machine ggml's barriers between two threads wait on a descheduled peer
(measured on 2 cores under load 3-4: 0.1 s per evaluation on 1 thread, 11-25 s on 2).
Besides the four metrics, the ``Metrics`` keep every item's outcome (recall: one per distinct
fact; generalize: one per held-out question) and every tone prompt's drift, for HEAD's baseline
and each candidate alike, on the window's one probe set: the gates pair them item by item.
The cost is linear in the probes: every probe is one batched prompt pass plus one pass per
answer token (tone: one more teacher-forced pass per model). ``progress("probes", i, n)`` is
told after each probe's answer (by default the open step's: ``adapters.runtime.activity``).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from adapters.runtime.activity import Progress, current
from adapters.evaluation.probes import (
    ProbeSet,
    count_violations,
    fraction_right,
    js_divergence,
    outcomes,
    recall_groups,
)
from evo_core.values import Metrics

if TYPE_CHECKING:
    from evo_core.config import LawConfig


@dataclass(frozen=True)
class ProbeReport:
    """The metrics and what they were computed from (for EVAL.md and debugging)."""

    metrics: Metrics
    recall_answers: tuple[str, ...]
    generalize_answers: tuple[str, ...]
    law_answers: tuple[str, ...]
    tone_answers: tuple[str, ...]  # HEAD's (the reference's) answers, teacher-forced on both
    tone_divergences: tuple[float, ...]  # per tone prompt: mean JS over its K positions
    seconds: float


class _Model:
    """One loaded GGUF: greedy answers and teacher-forced logits."""

    def __init__(self, path: Path, n_ctx: int, n_threads: int | None):
        from adapters.serving.llama import load_llama
        from adapters.serving.router import prompt_renderer  # exactly the prompt the router serves with

        self.llm = load_llama(path, n_ctx=n_ctx, n_threads=n_threads, logits_all=True)
        self.render = prompt_renderer(self.llm)
        self.n_ctx = n_ctx
        self.answered: Callable[[], None] = lambda: None  # told after each greedy answer

    def prompt_tokens(self, prompt: str) -> list[int]:
        text = self.render(prompt)
        tokens: list[int] = self.llm.tokenize(text.encode("utf-8"), special=True)
        return tokens

    def is_end(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    def greedy(self, prompt: str, max_tokens: int) -> list[int]:
        """The greedy answer's tokens, the end token included when reached."""
        tokens = self.prompt_tokens(prompt)
        max_tokens = min(max_tokens, self.n_ctx - len(tokens))
        self.llm.reset()
        self.llm.eval(tokens)
        out: list[int] = []
        while len(out) < max_tokens:
            token = int(np.argmax(self.llm.scores[self.llm.n_tokens - 1]))
            out.append(token)
            if self.is_end(token) or len(out) == max_tokens:
                break
            self.llm.eval([token])
        self.answered()
        return out

    def text(self, answer: Sequence[int]) -> str:
        body = [t for t in answer if not self.is_end(t)]
        return bytes(self.llm.detokenize(body)).decode("utf-8", "replace")

    def answer(self, prompt: str, max_tokens: int) -> str:
        return self.text(self.greedy(prompt, max_tokens))

    def forced_logits(self, prompt: str, answer: Sequence[int], k: int) -> np.ndarray[Any, Any]:
        """The logits that predict ``answer[:k]`` with ``prompt + answer[:k-1]`` as input."""
        tokens = self.prompt_tokens(prompt)
        self.llm.reset()
        self.llm.eval(tokens + list(answer[: k - 1]))
        start = len(tokens) - 1
        return np.array(self.llm.scores[start : start + k], dtype=np.float64)

    def close(self) -> None:
        close = getattr(self.llm, "close", None)
        if close is not None:
            close()


def _same_file(a: Path, b: Path) -> bool:
    from adapters.hashing import hash_file

    try:
        if a.resolve() == b.resolve() or os.path.samefile(a, b):
            return True
    except OSError:
        return False
    return a.stat().st_size == b.stat().st_size and hash_file(a) == hash_file(b)


def evaluate_report(
    gguf_path: str | os.PathLike[str],
    probes: ProbeSet,
    *,
    reference_gguf: str | os.PathLike[str],
    laws: Sequence[LawConfig],
    n_threads: int | None = 1,
    n_ctx: int = 256,
    progress: Progress | None = None,
) -> ProbeReport:
    """Measure ``gguf_path`` on ``probes``; tone drift against ``reference_gguf`` (HEAD's); a law
    answer counts as a violation when it breaks one of ``laws`` (config.toml's ``[[laws]]``)."""
    if probes.tone_positions < 1 or probes.max_tokens < 1:
        raise ValueError("tone_positions and max_tokens must be >= 1")
    start = time.perf_counter()
    path, ref_path = Path(gguf_path), Path(reference_gguf)
    model = _Model(path, n_ctx, n_threads)
    ref = model if _same_file(path, ref_path) else _Model(ref_path, n_ctx, n_threads)
    # one greedy answer per probe (tone: HEAD's, on ``ref``), so each answer is one probe done
    report, answered = progress or current(), itertools.count(1)
    total = len(probes.recall) + len(probes.generalize) + len(probes.laws) + len(probes.tone)
    model.answered = ref.answered = lambda: report("probes", next(answered), total)
    report("probes", 0, total)
    try:
        mt = probes.max_tokens
        recall = tuple(model.answer(q, mt) for q, _ in probes.recall)
        general = tuple(model.answer(q, mt) for q, _ in probes.generalize)
        law_answers = tuple(model.answer(x, mt) for x in probes.laws)
        tone_texts, drifts = [], []
        for prompt in probes.tone:
            head_answer = ref.greedy(prompt, mt)
            tone_texts.append(ref.text(head_answer))
            k = min(probes.tone_positions, len(head_answer))
            if k == 0:  # no room in the context: nothing to compare
                drifts.append(0.0)
                continue
            q_logits = ref.forced_logits(prompt, head_answer, k)
            p_logits = q_logits if ref is model else model.forced_logits(prompt, head_answer, k)
            drifts.append(float(js_divergence(p_logits, q_logits).mean()))
    finally:
        model.close()
        if ref is not model:
            ref.close()
    recall_items = outcomes(recall, [o for _, o in probes.recall], recall_groups(probes))
    general_items = outcomes(general, [o for _, o in probes.generalize])
    metrics = Metrics(
        recall=fraction_right(recall_items),
        generalize=fraction_right(general_items),
        # each drift is a mean of JS values in [0, 1]; fsum: the mean check_metrics recomputes
        tone_drift=min(1.0, max(0.0, math.fsum(drifts) / len(drifts))) if drifts else 0.0,
        law_violations=count_violations(law_answers, laws),
        recall_outcomes=recall_items,
        generalize_outcomes=general_items,
        tone_drifts=tuple(drifts),
    )
    return ProbeReport(
        metrics=metrics,
        recall_answers=recall,
        generalize_answers=general,
        law_answers=law_answers,
        tone_answers=tuple(tone_texts),
        tone_divergences=tuple(drifts),
        seconds=time.perf_counter() - start,
    )


def evaluate(
    gguf_path: str | os.PathLike[str],
    probes: ProbeSet,
    *,
    reference_gguf: str | os.PathLike[str],
    laws: Sequence[LawConfig],
    n_threads: int | None = 1,
) -> Metrics:
    """The four metrics of ``gguf_path`` on ``probes`` (tone drift against ``reference_gguf``,
    violations of ``laws``)."""
    return evaluate_report(gguf_path, probes, reference_gguf=reference_gguf, laws=laws, n_threads=n_threads).metrics


__all__ = ["ProbeReport", "evaluate", "evaluate_report"]
