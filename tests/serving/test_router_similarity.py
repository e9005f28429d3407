"""The documented similarity of shadow comparisons (``adapters/serving/similarity.py``)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adapters.serving.similarity import compare, similarity, token_agreement


def test_similarity_values() -> None:
    assert similarity("", "") == 1.0
    assert similarity("abc", "abc") == 1.0
    assert similarity("abc", "xyz") == 0.0
    assert similarity("abcd", "abce") == 0.75  # 2 * 3 / 8
    assert similarity("The blurk eats seeds.", "The blurk eats nuts.") > 0.8


@given(st.text(max_size=40), st.text(max_size=40))
def test_similarity_is_a_ratio(a: str, b: str) -> None:
    s = similarity(a, b)
    assert 0.0 <= s <= 1.0
    assert (s == 1.0) == (a == b)


def test_token_agreement() -> None:
    assert token_agreement([], []) == 1.0
    assert token_agreement([1, 2, 3], [1, 2, 3]) == 1.0
    assert token_agreement([1, 2, 3, 4], [1, 2]) == 0.5
    assert token_agreement([1, 2, 3], [0, 1, 2]) == 0.0  # positional: a shift disagrees


def test_compare() -> None:
    m = compare("a b", "a c", [1, 2], [1, 3])
    assert not m.exact and m.similarity == similarity("a b", "a c") and m.token_agreement == 0.5
    assert compare("x", "x").exact and compare("x", "x").token_agreement is None
