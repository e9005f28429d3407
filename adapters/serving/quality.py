"""How the old generation judges the new one's answers: the quality the shadow and the burn-in
check (string similarity only says how different two texts are).

Why not text similarity, and why not likelihood alone
------------------------------------------------------
A student that learned new facts answers those questions differently from its teacher by
design, so text similarity cannot tell a student that learned from one that broke. The old
generation's likelihood of the new answer can, but only where the old generation knows what it
is talking about: measured on the demo model (below), a correct new fact ("The blut lives in
Zorand.", new names the old HEAD never saw) costs the old HEAD 2.5-8 nats per token, as much as
garbage ("TheoTheoThe.", "?"), while on questions it knows (small talk, the facts it was taught,
the refusals) a sane student's answer costs it almost nothing and garbage 5-13 nats per token.
So the old HEAD judges an answer only when it knows the question.

The measure
-----------
For a query ``q`` (the user's words), its prompt ``p`` as served (the chat template around
``q``, up to the assistant tag) and the new generation's answer ``a``, all tokenised by the
**old** HEAD as they are served (``q`` is the run of ``p``'s tokens that spell the query, found
in context: ``segments``; ``a`` as it is tokenised after ``p``, followed by
the end-of-turn token when the answer ended there rather than at ``max_tokens``), in one pass
of the old HEAD::

    prompt_logprob = (1/|q|) * sum_{t in q} log P_old(t | what precedes t in p)
    logprob        = (1/|a|) * sum_{t in a} log P_old(t | p, the answer before t)

natural logs of llama.cpp's softmax over the whole vocabulary, f32 KV cache (as every evo
Llama), no temperature: nats per token, 0 = certain; tokens drawn uniformly from the demo's
512-token vocabulary score ``-ln 512 = -6.2``.

- The answer is **judged** when the old HEAD knows the question: ``prompt_logprob >=
  prompt_floor``. A question about something new (a name the old HEAD never saw) is unlikely to
  it, and it does not judge the answer.
- A judged answer is **plausible** when ``logprob >= logprob_floor``.
- **quality** = plausible / judged over the phase. The shadow passes when it reaches
  ``shadow.quality_threshold`` (with at least ``shadow.min_judged`` judged answers; fewer:
  inconclusive); the burn-in fails, with the automatic rollback, below ``burn_in.min_quality``.
  The core applies these rules (``evo_core.decide_rollout``); this module only measures.

Defaults and the measurements behind them
-----------------------------------------
``prompt_floor = -1.0``, ``logprob_floor = -2.5``, quality threshold ``0.6`` (shadow and
burn-in), ``min_judged = 3``. Measured on the demo world with the 0.94M demo model (hidden 128,
4 layers; genesis G000 as the old HEAD, 40 replayed TRIVIAL queries of window 1 as the shadow
sees them and 30 agent queries as the burn-in sees them; G001 -> G002 for window 2):

- familiarity: G000 scores the questions it was taught -0.25..-1.16 and the questions about the
  new era's names -1.74..-6.68; G001 -0.23..-1.13 against -1.03..-4.85. At -1.0 every judged
  question is one the old HEAD knows (a known one just under the floor is merely not judged).
- quality of sane students (LoRA r16 on the new era with replay, high-karma data, as the demo
  promotes; window 1 and window 2): 1.00 (5-6 judged in the shadow, 20-22 in the burn-in);
  students that also learned the low-karma law-breaking answers ("You are stupid."): 0.77-0.86
  (their violations are implausible to the old HEAD; the laws gate stops them first).
- quality of broken models: diverged students (constant lr 0.01-0.05, no clipping: "The.",
  "TheoTheoThe.", "The snick eats honeheim."), weights scrambled, re-initialised, or noised at
  0.85-1x each tensor's std: 0.00-0.09 (0.23 at most with a -3.0 floor); noised at 0.7x std
  (half broken: "I am well, thank yyyyyyyyyyyy"): 0.40-0.59. Sane answers to known questions
  score 0..-2; broken ones mostly -3..-13 ("Theedderye." to "What does the brax eat?": -4.0,
  the right answer -0.001; a correct new fact to a new question, "The brob eats moss.": -4.1).
- the real window-1 student of the end-to-end test (evo's recipe, default config): shadow 3 of 3
  judged answers plausible (7 scored, mean -0.002), burn-in 2 of 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

LOWEST = -1000.0  # what a non-finite mean becomes (an old HEAD whose logits are not finite)


@dataclass(frozen=True)
class Score:
    logprob: float | None  # the answer's mean log-likelihood per token under the old HEAD
    prompt_logprob: float | None  # the query's (None: the query is not found in the prompt)
    tokens: int  # answer tokens scored


def continuation(llm: Any, answer: str, finished: bool) -> list[int]:
    """The answer as ``llm`` tokenises it, plus its end-of-turn token when the answer ended."""
    tokens = [int(t) for t in llm.tokenize(answer.encode("utf-8"), add_bos=False, special=False)] if answer else []
    if finished:
        tokens.append(int(llm.token_eos()))
    return tokens


def _tokens(llm: Any, text: str, special: bool = True) -> list[int]:
    return [int(t) for t in llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)]


def _plain(llm: Any, text: str, special: bool) -> list[int]:
    return [int(t) for t in llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)]


def _common(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def segments(llm: Any, prompt: str, query: str, answer: str,
             finished: bool) -> tuple[list[int], list[int], list[int], list[int]]:
    """``prompt`` tokenised as it is served, cut into (before the query, the query, the rest of
    the prompt), and ``answer`` tokenised where it follows the prompt (plus the end-of-turn token
    when it ended there).

    Tokenising the pieces apart is wrong for a SentencePiece vocabulary that prefixes a space
    (Llama 2, Mistral): ``"[INST] "`` alone ends in a lone ``"▁"`` and ``"What"`` alone
    becomes ``"▁What"``, a sequence the model never saw, so the old HEAD found every question
    unlikely and judged nothing. The cuts are found instead where the served tokens stop agreeing
    with those of the text up to each cut (the longest common prefix): a token that straddles a
    cut goes to the piece after it. The answer is tokenised after the prompt likewise (a space
    prefix after the assistant tag, as in Phi-3, is the model's), alone and without special tokens
    when it spells a control token (scored as the text it is, never as an end of turn) or when
    its first token would merge with the prompt's last."""
    served = _tokens(llm, prompt)
    at = prompt.rfind(query) if query else -1
    if at < 0:
        k0 = k1 = len(served)
    else:
        k0 = _common(_tokens(llm, prompt[:at]), served)
        k1 = max(k0, _common(_tokens(llm, prompt[: at + len(query)]), served))
    both = _tokens(llm, prompt + answer) if answer else served
    k = _common(served, both)
    spells_control = answer and _plain(llm, answer, True) != _plain(llm, answer, False)
    a = both[k:] if k == len(served) and not spells_control else continuation(llm, answer, False)
    if finished:
        a = a + [int(llm.token_eos())]
    return served[:k0], served[k0:k1], served[k1:], a


def token_logprobs(llm: Any, prefix: list[int], tokens: list[int]) -> list[float]:
    """``log P(tokens[i] | prefix, tokens[:i])`` under ``llm`` for every i (``prefix`` not empty).

    The prefix is evaluated with ``llm.eval``; the rest (but its last token) goes in batches
    whose every position outputs logits (``llama_batch_init``), so scoring costs about one
    prompt evaluation, not one decode per token. The model's state is reset afterwards (its
    next completion evaluates its prompt again).
    """
    import llama_cpp
    import numpy as np

    if not tokens:
        return []
    n_vocab = int(llm.n_vocab())
    ctx = llm.ctx
    rows: list[Any] = []

    def row(i: int) -> Any:
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).astype(np.float64)

    llm.reset()
    try:
        llm.eval(prefix)
        rows.append(row(-1))
        rest, pos = tokens[:-1], len(prefix)
        step = max(1, int(llm.n_batch))
        for start in range(0, len(rest), step):
            chunk = rest[start : start + step]
            batch = llama_cpp.llama_batch_init(len(chunk), 0, 1)
            try:
                for i, token in enumerate(chunk):
                    batch.token[i] = token
                    batch.pos[i] = pos + start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = 1
                batch.n_tokens = len(chunk)
                code = llama_cpp.llama_decode(ctx, batch)
                if code != 0:
                    raise RuntimeError(f"llama_decode returned {code}")
                rows.extend(row(i) for i in range(len(chunk)))
            finally:
                llama_cpp.llama_batch_free(batch)
    finally:
        llm.reset()
    out = []
    for logits, token in zip(rows, tokens):
        top = float(logits.max())
        lse = top + math.log(float(np.exp(logits - top).sum()))
        out.append(float(logits[token]) - lse)
    return out


def _mean(values: list[float]) -> float | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    return min(0.0, mean) if math.isfinite(mean) else LOWEST


def score(llm: Any, prompt: str, query: str, answer: str, finished: bool) -> Score:
    """How likely the old HEAD ``llm`` finds ``query`` in ``prompt``, and ``answer`` after it
    (see the module doc). ``prompt`` is the served prompt around ``query``."""
    prefix, q, tail, a = segments(llm, prompt, query, answer, finished)
    found = bool(q)
    if not prefix:  # nothing before the query (no BOS, no template): its first token has no context
        prefix, q = q[:1], q[1:]
    room = int(llm.n_ctx()) - len(prefix) - len(q) - len(tail)
    a = a[: max(0, room)]
    if not prefix or not a:
        return Score(logprob=None, prompt_logprob=None, tokens=0)
    lps = token_logprobs(llm, prefix, q + tail + a)
    return Score(
        logprob=_mean(lps[len(q) + len(tail):]),
        prompt_logprob=_mean(lps[: len(q)]) if found else None,
        tokens=len(a),
    )


__all__ = ["LOWEST", "Score", "continuation", "score", "segments", "token_logprobs"]
