"""How the shadow's answer is compared with HEAD's (the numbers a ``ShadowCompared`` records).

- ``exact``: the two answer texts are identical, byte for byte (no normalisation: a shadow that
  only changes whitespace or case is a different model, and the similarity already forgives it).
- ``similarity`` (in [0, 1]): difflib's ``SequenceMatcher(None, a, b, autojunk=False).ratio()``
  on the characters of the two texts, i.e. ``2 * M / (len(a) + len(b))`` where ``M`` is the
  number of characters in the matching blocks found by Ratcliff/Obershelp pattern matching
  (longest common substring first, then recursively on both sides). 1.0 exactly when the texts
  are equal (two empty answers included), 0.0 when they share no character. ``autojunk`` is off
  so that long answers are not scored by a heuristic that ignores frequent characters. The mean
  similarity over the shadow's samples is its **parity**, recorded in ``ShadowCompleted``; it
  judges only when ``shadow.parity_threshold`` > 0 (default 0): a student that learned new
  facts answers those questions differently from its teacher by design. What judges the shadow
  is the old HEAD's likelihood of the answers (``adapters.serving.quality``).
- ``token_agreement`` (optional, in [0, 1], reported but not recorded in the ledger): the
  fraction of positions ``i < max(len(a), len(b))`` where both token sequences have the same
  token; 1.0 for two empty sequences. It is positional, so one inserted token early on makes
  every later position disagree: it measures how long greedy decoding stays in lockstep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher


def similarity(a: str, b: str) -> float:
    """Character-level Ratcliff/Obershelp ratio in [0, 1] (see the module doc)."""
    if a == b:
        return 1.0
    return SequenceMatcher(None, a, b, autojunk=False).ratio()


def token_agreement(a: Sequence[int], b: Sequence[int]) -> float:
    """Positional agreement of two token sequences in [0, 1] (see the module doc)."""
    n = max(len(a), len(b))
    if n == 0:
        return 1.0
    return sum(1 for x, y in zip(a, b) if x == y) / n


@dataclass(frozen=True)
class Match:
    exact: bool
    similarity: float
    token_agreement: float | None = None


def compare(head: str, shadow: str, head_tokens: Sequence[int] | None = None,
            shadow_tokens: Sequence[int] | None = None) -> Match:
    agreement = None
    if head_tokens is not None and shadow_tokens is not None:
        agreement = token_agreement(head_tokens, shadow_tokens)
    return Match(exact=head == shadow, similarity=similarity(head, shadow), token_agreement=agreement)


__all__ = ["Match", "compare", "similarity", "token_agreement"]
