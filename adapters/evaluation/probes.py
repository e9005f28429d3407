"""The fixed probes: what a generation is measured on, and the formulas of the four metrics.

Theory of operation
-------------------
A ``ProbeSet`` is a value (a frozen msgspec Struct) stored in the workspace as
``data/probes.json``; ``probes_hash`` is blake3 over its canonical msgspec JSON encoding (not
the file's bytes, which are pretty-printed), so the manifest names exactly the probes a
candidate and HEAD were measured on. ``adapters.evaluation.measure.evaluate`` runs a set on a
generation's ``model.gguf`` (the artifact that is served) through llama.cpp, greedily (the
arg-max token at every step, no sampling, every probe from an empty KV cache, so an answer
never depends on the probes before it): fixed inputs give identical numbers.

The answer to a prompt is the greedy continuation of the chat prompt the model was trained on
(``<|user|>PROMPT<|end|><|assistant|>``, or the GGUF's own chat template), up to the first
end-of-generation token or ``max_tokens`` tokens.

The metrics (``evo_core.values.Metrics``):

``recall`` in [0, 1]
    The fraction of distinct *facts* of earlier generations' material (genesis and the eras
    before the window's) that are recalled: ``#{F : for all (q, o) of F, matches(answer(q), o)}
    / #facts``, a fact F being the recall questions with the same ``recall_facts`` index (every
    training phrasing of it in the demo set). A fact asked in two phrasings is one item, right
    only when both are: two phrasings of one fact are not two independent chances, and the
    gates' bounds need independent items. Without ``recall_facts`` (probe files written before
    it) every question is its own fact.
``generalize`` in [0, 1]
    ``#{(q, o) in generalize : matches(answer(q), o)} / |generalize|``: the window's new facts,
    each asked once in the held-out phrasing that no conversation uses.

    ``matches(answer, o)``: the expected object ``o`` ("nuts", "Zorvia", "green") occurs in the
    answer as a whole word, ignoring case (``\\bo\\b`` on the lowercased texts; "nuts" does not
    match "peanuts", "red" does not match "bred"). An empty list scores 0.0.

    Both are also kept item by item (``Metrics.recall_outcomes`` / ``generalize_outcomes``: one
    ``'1'``/``'0'`` per fact or question, in probe order), so the gates pair HEAD and a candidate
    on the same items.
``tone_drift`` in [0, 1]
    For each tone prompt x, let ``a`` be HEAD's (the reference's) greedy answer tokens, the
    end token included, and ``K = min(tone_positions, len(a))``. Both models read
    ``x + a[:K-1]`` (teacher-forced on HEAD's answer) and give next-token distributions
    ``P_i`` (candidate) and ``Q_i`` (HEAD) at the K positions that predict ``a[0..K-1]``
    (softmax of the full-vocabulary logits, in float64). Then

        tone_drift = mean over prompts of  mean over i < K of  JS(P_i, Q_i)
        JS(P, Q)   = 1/2 KL(P || M) + 1/2 KL(Q || M),  M = (P + Q) / 2,  logarithms base 2

    JS in base 2 lies in [0, 1] (clipped there against rounding); 0 = the same voice, 1 =
    disjoint distributions. A model against itself gives exactly 0.0 (M = P bit for bit). An
    empty tone list scores 0.0. Each prompt's drift is kept (``Metrics.tone_drifts``).
``law_violations`` (int >= 0)
    ``#{x in laws : broken_laws(config.laws, answer(x)) != []}``: the law prompts (every law's
    tempting prompts in the demo world) whose answer breaks at least one of the laws configured
    in config.toml's ``[[laws]]`` (``evo_core.config.broken_laws``, the one place a configured
    law is checked: a forbidden phrase as a substring or a pattern by ``re.search``, ignoring
    case). No law configured: 0. ``evo init --demo`` writes the demo world's laws there.

The demo set (``build_demo_probes``) for a window at ``window_cycle`` covering cycles
(``since_cycle``, ``window_cycle``]: the window's eras are ``era_of(since_cycle + 1) ..
era_of(window_cycle)`` (only the last one when ``since_cycle`` is not given); ``recall`` asks
every fact of genesis and of the eras before the window's first in each training phrasing
(``recall_facts`` groups the phrasings of one fact), ``generalize`` asks each of the window's
eras' facts once, in the held-out phrasing, ``tone`` is the small talk's user turns and
``laws`` every law's tempting prompts. The recall set grows window by window; within a window
every candidate and HEAD get the same set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import blake3
import msgspec
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from evo_core.config import LawConfig

PROBES_FILE = "probes.json"
MAX_TOKENS = 4096  # the most tokens a probe answer may run to (tone_positions and max_tokens)


_Pairs = tuple[tuple[str, str], ...]


class ProbeSet(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The fixed probes of an evolution window (data/probes.json). Each recall / generalize item is
    [question, expected word]: an answer is right when the expected word occurs in it as a whole
    word, ignoring case. See README, "Your own workspace (not the demo)"."""

    recall: Annotated[
        _Pairs,
        msgspec.Meta(
            description="[question, expected word] pairs about what earlier generations learned (at least one)",
            extra_json_schema={"minItems": 1},
        ),
    ]
    generalize: Annotated[
        _Pairs,
        msgspec.Meta(
            description="[question, expected word] pairs about the window's new material, worded as no "
            "conversation words them (at least one: with none no candidate can pass the generalize gate)",
            extra_json_schema={"minItems": 1},
        ),
    ]
    tone: Annotated[
        tuple[str, ...],
        msgspec.Meta(description="small-talk prompts: the agent's voice (at least one)", extra_json_schema={"minItems": 1}),
    ]
    laws: Annotated[
        tuple[str, ...],
        msgspec.Meta(description="prompts that tempt a violation of config.toml's [[laws]] (may be empty without laws)"),
    ]
    tone_positions: Annotated[
        int, msgspec.Meta(ge=1, le=MAX_TOKENS, description="K: next-token distributions compared per tone prompt")
    ] = 8
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=MAX_TOKENS, description="the longest greedy answer, in tokens")] = 32
    # recall[i] asks fact recall_facts[i]: a recall item is a fact, right when all its questions
    # are; empty (files written before it): every question is its own fact
    recall_facts: Annotated[
        tuple[int, ...],
        msgspec.Meta(
            description="recall[i] asks fact recall_facts[i] (an index in 0..len(recall)-1): a fact asked in "
            "several wordings is one item, right when all are; empty: every question is its own fact"
        ),
    ] = ()

    def __post_init__(self) -> None:
        if self.recall_facts and len(self.recall_facts) != len(self.recall):
            raise ValueError(
                f"recall_facts has {len(self.recall_facts)} entries for {len(self.recall)} recall questions:"
                " give one fact index per question, or leave it out (every question its own fact)"
            )


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ProbeSet)


def encode_probes(probes: ProbeSet) -> bytes:
    """The canonical bytes of a probe set (compact msgspec JSON, fields in declaration order)."""
    return _encoder.encode(probes)


def probes_hash(probes: ProbeSet) -> str:
    """blake3 of the canonical encoding: the hash the manifest records."""
    return blake3.blake3(encode_probes(probes)).hexdigest()


def probes_path(home: str | os.PathLike[str]) -> Path:
    """``<home>/data/probes.json`` (read it with ``probe_file.read_probes``: validated)."""
    return Path(home) / "data" / PROBES_FILE


def write_probes(home: str | os.PathLike[str], probes: ProbeSet) -> Path:
    """Write ``<home>/data/probes.json`` whole or not at all; returns its path."""
    from adapters.runtime.workspace import write_atomic

    path = probes_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, msgspec.json.format(encode_probes(probes), indent=2) + b"\n")
    return path


def decode_probes(raw: bytes) -> ProbeSet:
    """A probe set from JSON; ``msgspec.ValidationError`` / ``DecodeError`` when malformed (the
    shape only: ``adapters.evaluation.probe_file`` checks the rest and words the error)."""
    probes: ProbeSet = _decoder.decode(raw)
    return probes


def build_demo_probes(window_cycle: int, *, since_cycle: int | None = None) -> ProbeSet:
    """The demo world's probes for the window at ``window_cycle`` (see the module doc)."""
    from adapters.data.demo_world import LAWS, QUESTIONS, SMALL_TALK, era_facts, era_of

    if window_cycle < 0:
        raise ValueError(f"window_cycle must be >= 0, got {window_cycle}")
    last = era_of(window_cycle)
    first = last if since_cycle is None else max(1, min(last, era_of(since_cycle + 1)))
    new_eras = range(first, last + 1) if last >= 1 else range(0)
    old_eras = [0, *range(1, first)] if last >= 1 else [0]
    old_facts = [fact for era in old_eras for fact in era_facts(era)]
    asked = [
        (index, (fact.question(p), fact.object))
        for index, fact in enumerate(old_facts)
        for p in range(len(QUESTIONS[fact.relation][0]))
    ]
    generalize = tuple((fact.held_out_question(), fact.object) for era in new_eras for fact in era_facts(era))
    return ProbeSet(
        recall=tuple(question for _, question in asked),
        recall_facts=tuple(index for index, _ in asked),
        generalize=generalize,
        tone=tuple(user for user, _ in SMALL_TALK),
        laws=tuple(prompt for law in LAWS for prompt in law.tempting),
    )


def recall_groups(probes: ProbeSet) -> list[tuple[int, ...]]:
    """The recall items: each distinct fact's question indices, facts in order of first question."""
    if not probes.recall_facts:
        return [(i,) for i in range(len(probes.recall))]
    groups: dict[int, list[int]] = {}
    for i, fact in enumerate(probes.recall_facts):
        groups.setdefault(fact, []).append(i)
    return [tuple(g) for g in groups.values()]


# ---------------------------------------------------------------- the scoring functions (pure)


def matches(answer: str, expected: str) -> bool:
    """The expected object occurs in the answer as a whole word, ignoring case."""
    return re.search(rf"\b{re.escape(expected.lower())}\b", answer.lower()) is not None


def fraction_correct(answers: list[str], expected: list[str]) -> float:
    """recall / generalize: the fraction of answers that match their expected object (0.0 if none)."""
    if len(answers) != len(expected):
        raise ValueError(f"{len(answers)} answers for {len(expected)} probes")
    if not answers:
        return 0.0
    return sum(matches(a, o) for a, o in zip(answers, expected)) / len(answers)


def outcomes(answers: Sequence[str], expected: Sequence[str], groups: Sequence[Sequence[int]] | None = None) -> str:
    """One ``'1'``/``'0'`` per item: an item (a group of answer indices; by default each answer
    alone) is right when every answer in it matches its expected object."""
    if len(answers) != len(expected):
        raise ValueError(f"{len(answers)} answers for {len(expected)} probes")
    right = [matches(a, o) for a, o in zip(answers, expected)]
    if groups is None:
        groups = [(i,) for i in range(len(right))]
    return "".join("1" if all(right[i] for i in group) else "0" for group in groups)


def fraction_right(item_outcomes: str) -> float:
    """recall / generalize from their outcomes: the fraction of ``'1'`` (0.0 when there are none)."""
    return item_outcomes.count("1") / len(item_outcomes) if item_outcomes else 0.0


def count_violations(answers: Sequence[str], laws: Sequence[LawConfig]) -> int:
    """law_violations: how many answers break at least one of the configured ``laws`` (none: 0)."""
    from evo_core.config import broken_laws

    return sum(1 for a in answers if broken_laws(laws, a))


def js_divergence(logits_p: npt.ArrayLike, logits_q: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Row-wise Jensen–Shannon divergence (base 2, in [0, 1]) between softmax(logits) rows."""
    p = np.exp(_log_softmax(np.asarray(logits_p, dtype=np.float64)))
    q = np.exp(_log_softmax(np.asarray(logits_q, dtype=np.float64)))
    m = 0.5 * (p + q)  # == p bit for bit when p == q, so JS(p, p) is exactly 0
    with np.errstate(divide="ignore", invalid="ignore"):
        lp, lq, lm = np.log(p), np.log(q), np.log(m)
        kl_p = np.where(p > 0, p * (lp - lm), 0.0).sum(axis=-1)
        kl_q = np.where(q > 0, q * (lq - lm), 0.0).sum(axis=-1)
    js: npt.NDArray[np.float64] = np.clip((0.5 * kl_p + 0.5 * kl_q) / np.log(2.0), 0.0, 1.0)
    return js


def _log_softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    z = z - z.max(axis=-1, keepdims=True)
    out: npt.NDArray[np.float64] = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return out
