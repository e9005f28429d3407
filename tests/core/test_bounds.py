"""The paired-difference bounds (Tango's score interval): known values, identities, coverage."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from evo_core.bounds import (
    lower_bound,
    normal_quantile,
    paired_counts,
    restricted_loss_rate,
    score_statistic,
    upper_bound,
)

Z95 = normal_quantile(0.95)


@st.composite
def tables(draw: st.DrawFn, max_n: int = 80) -> tuple[int, int, int]:
    """(wins, losses, n) of a paired table."""
    n = draw(st.integers(1, max_n))
    wins = draw(st.integers(0, n))
    losses = draw(st.integers(0, n - wins))
    return wins, losses, n


confidences = st.floats(0.5, 0.999)


@pytest.mark.parametrize(("p", "z"), [(0.5, 0.0), (0.9, 1.2815515655446004), (0.95, 1.6448536269514722),
                                      (0.975, 1.959963984540054), (0.999, 3.090232306167813)])
def test_the_normal_quantile(p: float, z: float) -> None:
    assert normal_quantile(p) == pytest.approx(z, abs=1e-12)
    assert 0.5 * math.erfc(-normal_quantile(p) / math.sqrt(2)) == pytest.approx(p, abs=1e-15)


@pytest.mark.parametrize("p", [0.4999, 1.0, -1.0, math.nan])
def test_a_confidence_outside_the_one_sided_range_is_refused(p: float) -> None:
    with pytest.raises(ValueError, match="confidence"):
        normal_quantile(p)


def test_the_cases_the_gates_are_specified_by() -> None:
    # recall, 30 facts: losing 1 has an upper bound of 0.136 on the drop, losing 8 of 0.415
    assert -lower_bound(0, 1, 30, Z95) == pytest.approx(0.13640, abs=1e-4)
    assert -lower_bound(0, 8, 30, Z95) == pytest.approx(0.41461, abs=1e-4)
    assert -lower_bound(0, 0, 30, Z95) == pytest.approx(0.08272, abs=1e-4)  # equal to HEAD
    # generalize, 30 items: 1 more right than HEAD is noise, 18 more (20 vs 2) is not
    assert lower_bound(1, 0, 30, Z95) == pytest.approx(-0.05215, abs=1e-4)
    assert lower_bound(18, 0, 30, Z95) == pytest.approx(0.45058, abs=1e-4)


def test_no_discordant_item_gives_the_wilson_bound_of_zero_events() -> None:
    for n in (1, 5, 30, 60, 1000):
        wilson = Z95**2 / (n + Z95**2)
        assert lower_bound(0, 0, n, Z95) == pytest.approx(-wilson, abs=1e-12)
        assert upper_bound(0, 0, n, Z95) == pytest.approx(wilson, abs=1e-12)


@given(tables())
def test_at_zero_the_score_is_mcnemars(t: tuple[int, int, int]) -> None:
    b, c, n = t
    expected = 0.0 if b == c else (b - c) / math.sqrt(b + c)
    assert score_statistic(b, c, n, 0.0) == pytest.approx(expected, abs=1e-12)


@given(tables(), st.floats(-0.99, 0.99))
def test_the_restricted_estimate_maximises_the_likelihood(t: tuple[int, int, int], delta: float) -> None:
    """q, checked against the constrained likelihood it claims to maximise (a grid search)."""
    b, c, n = t
    q = restricted_loss_rate(b, c, n, delta)
    lo, hi = max(0.0, -delta), (1.0 - delta) / 2  # pi_loss = q, pi_win = q + delta, concordant >= 0
    assert lo - 1e-9 <= q <= hi + 1e-9

    def loglik(x: float) -> float:
        parts = [(b, x + delta), (c, x), (n - b - c, 1.0 - 2 * x - delta)]
        if any(k and p <= 0 for k, p in parts):
            return -math.inf
        return sum(k * math.log(p) for k, p in parts if k)

    best = max(loglik(lo + (hi - lo) * i / 400) for i in range(401))
    assert loglik(min(max(q, lo), hi)) >= best - 1e-6 * (1 + abs(best))


@given(tables(), confidences)
def test_the_bounds_bracket_the_observed_difference(t: tuple[int, int, int], confidence: float) -> None:
    b, c, n = t
    z = normal_quantile(confidence)
    observed = (b - c) / n
    low, high = lower_bound(b, c, n, z), upper_bound(b, c, n, z)
    assert -1.0 <= low <= observed + 1e-12 and observed - 1e-12 <= high <= 1.0
    assert upper_bound(b, c, n, z) == -lower_bound(c, b, n, z)  # swapping roles negates


@given(tables(), confidences)
def test_the_lower_bound_solves_the_score_equation(t: tuple[int, int, int], confidence: float) -> None:
    b, c, n = t
    z = normal_quantile(confidence)
    low = lower_bound(b, c, n, z)
    if low > -1.0 + 1e-9:
        assert score_statistic(b, c, n, low) == pytest.approx(z, abs=1e-6)


@given(tables(max_n=60), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_one_more_win_never_lowers_the_bound_and_one_more_loss_never_raises_it(
    t: tuple[int, int, int], confidence: float
) -> None:
    """Turning a concordant item into a win (or a loss into a concordant item) only helps."""
    b, c, n = t
    z = normal_quantile(confidence)
    low = lower_bound(b, c, n, z)
    if b + c < n:
        assert lower_bound(b + 1, c, n, z) >= low - 1e-12
        assert lower_bound(b, c + 1, n, z) <= low + 1e-12
    if c > 0:
        assert lower_bound(b, c - 1, n, z) >= low - 1e-12
        assert lower_bound(b + 1, c - 1, n, z) >= low - 1e-12


@given(tables(), confidences, confidences)
def test_more_confidence_never_narrows_the_bounds(t: tuple[int, int, int], p: float, q: float) -> None:
    b, c, n = t
    lo_p, lo_q = sorted((p, q))
    assert lower_bound(b, c, n, normal_quantile(lo_q)) <= lower_bound(b, c, n, normal_quantile(lo_p)) + 1e-12


def test_half_confidence_is_the_observed_difference() -> None:
    for b, c, n in [(0, 0, 30), (1, 0, 30), (18, 2, 30), (0, 8, 30), (30, 0, 30)]:
        assert lower_bound(b, c, n, 0.0) == pytest.approx((b - c) / n, abs=1e-12)


def test_more_items_with_the_same_rates_narrow_the_bounds() -> None:
    widths = [(3 * k - lower_bound(4 * k, k, 30 * k, Z95) * 30 * k) / (30 * k) for k in (1, 2, 4, 8)]
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0] / 2


def test_coverage_of_the_one_sided_95_percent_bound_at_30_items() -> None:
    """Exactly, over a grid of true win / loss rates: the chance that the lower bound is at or
    under the true difference (the bound is asymptotic: about, not at least, 95%)."""
    n = 30
    bounds = {(b, c): lower_bound(b, c, n, Z95) for b in range(n + 1) for c in range(n + 1 - b)}
    lf = [math.lgamma(k + 1) for k in range(n + 1)]
    coverages = []
    for i in range(21):
        for j in range(21 - i):
            pb, pc = i / 20, j / 20
            covered = 0.0
            for (b, c), low in bounds.items():
                if low > pb - pc + 1e-12:
                    continue
                cells = [(b, pb), (c, pc), (n - b - c, 1.0 - pb - pc)]
                if any(k and p <= 0 for k, p in cells):
                    continue
                covered += math.exp(lf[n] - sum(lf[k] for k, _ in cells) + sum(k * math.log(p) for k, p in cells if k))
            coverages.append(covered)
    assert 0.94 <= sum(coverages) / len(coverages) <= 0.96
    assert min(coverages) >= 0.90


def test_paired_counts() -> None:
    assert paired_counts("1100", "1010") == (1, 1, 4)
    assert paired_counts("", "") == (0, 0, 0)
    with pytest.raises(ValueError):
        paired_counts("1", "10")
    with pytest.raises(ValueError):
        lower_bound(3, 0, 2, Z95)
