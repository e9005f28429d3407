"""One-sided confidence bounds on a paired difference of two proportions (pure math).

Theory of operation
-------------------
A candidate and HEAD answer the *same* n probe items; each item is right (1) or wrong (0) for
each model. Only the discordant items carry evidence about the difference:

    wins   b = #{items the candidate got right and HEAD wrong}
    losses c = #{items HEAD got right and the candidate wrong}
    observed difference  d = (b - c) / n  =  candidate's fraction - HEAD's fraction

The true difference is Delta = pi_b - pi_c (the chances that an item is a win / a loss). Its
bounds come from **Tango's asymptotic score interval** (T. Tango, Statistics in Medicine 17,
891-908, 1998; recommended for paired proportions by Fagerland, Lydersen & Laake, Statistics in
Medicine 33, 2850-2875, 2014). The score statistic for a hypothesised difference Delta is

    T(Delta) = (b - c - n*Delta) / sqrt(n * (2*q + Delta*(1 - Delta)))

where q is the restricted maximum-likelihood estimate of pi_c under Delta, the positive root of
``2n q^2 + W q - c Delta (1 - Delta) = 0`` with ``W = -b - c + (2n - b + c) Delta``:

    q = (sqrt(W^2 + 8 n c Delta (1 - Delta)) - W) / (4n)

T decreases in Delta. With ``z`` the standard normal quantile of the confidence (1.6449 for a
one-sided 95%), the one-sided bounds are the Delta where the score reaches the quantile:

    lower bound L:  T(L) = +z,  L <= d          upper bound U:  T(U) = -z,  U >= d

found by bisection on [-1, d] and [d, 1] (T is monotone there). At Delta = 0, T is McNemar's
statistic (b - c) / sqrt(b + c); with no discordant item (b = c = 0) the bounds are
-+ z^2 / (n + z^2), the Wilson bound of 0 events in n: agreement on 30 items still leaves room
for a true difference of 0.083. Unlike Newcombe's hybrid score interval (method 10, 1998),
Tango's depends only on (b, c, n): how the concordant items split between right and wrong does
not matter, and the interval never collapses (Newcombe's has zero width when every item is
concordant and half are right, and one more win can then lower its lower bound). L is
monotone: one more win never lowers it, one more loss never raises it (tests check both).
Like every asymptotic interval its coverage is approximate: over a grid of true win / loss
rates with n = 30, the one-sided 95% lower bound covers the true difference 95.1% of the time
on average and at least 91% everywhere (``tests/core/test_bounds.py`` computes it exactly).

Swapping the roles (b <-> c) negates the interval, so the upper bound of HEAD - candidate is
``-L``. A confidence of 0.5 gives z = 0 and L = U = d: the raw observed difference.
"""

from __future__ import annotations

import math

# Bisection halves the bracket each step; 2 / 2**64 is far below a float's step near 0.1.
_STEPS = 64


def normal_quantile(p: float) -> float:
    """z with Phi(z) = p for p in [0.5, 1), Phi the standard normal CDF (by bisection on erfc)."""
    if not 0.5 <= p < 1.0:
        raise ValueError(f"a one-sided confidence must be in [0.5, 1), got {p!r}")
    lo, hi = 0.0, 40.0  # Phi(40) rounds to 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            lo = mid
        else:
            hi = mid
    return lo


def restricted_loss_rate(wins: int, losses: int, n: int, delta: float) -> float:
    """q: the maximum-likelihood chance of a loss given that pi_wins - pi_losses = ``delta``."""
    b, c = wins, losses
    w = -b - c + (2 * n - b + c) * delta
    return (math.sqrt(max(0.0, w * w + 8 * n * c * delta * (1.0 - delta))) - w) / (4 * n)


def score_statistic(wins: int, losses: int, n: int, delta: float) -> float:
    """Tango's T(delta) for ``wins`` (b) and ``losses`` (c) among ``n`` paired items."""
    b, c = wins, losses
    q = restricted_loss_rate(wins, losses, n, delta)
    var = n * (2.0 * q + delta * (1.0 - delta))
    num = b - c - n * delta
    if var <= 0.0:  # only at delta = -+1, where the data are all wins or all losses
        return math.copysign(math.inf, num) if num else 0.0
    return num / math.sqrt(var)


def _check(wins: int, losses: int, n: int) -> None:
    if n < 1 or wins < 0 or losses < 0 or wins + losses > n:
        raise ValueError(f"need 0 <= wins + losses <= n and n >= 1, got wins={wins} losses={losses} n={n}")


def lower_bound(wins: int, losses: int, n: int, z: float) -> float:
    """One-sided lower bound of Delta = pi_wins - pi_losses at normal quantile ``z`` (>= 0)."""
    _check(wins, losses, n)
    lo, hi = -1.0, (wins - losses) / n
    if hi <= -1.0:
        return -1.0
    # invariant: T(lo) > z (excluded), T(hi) <= z (inside); T(d) = 0 <= z
    for _ in range(_STEPS):
        mid = (lo + hi) / 2
        if score_statistic(wins, losses, n, mid) > z:
            lo = mid
        else:
            hi = mid
    return hi


def upper_bound(wins: int, losses: int, n: int, z: float) -> float:
    """One-sided upper bound of Delta (by symmetry: minus the lower bound with roles swapped)."""
    return -lower_bound(losses, wins, n, z)


def paired_counts(candidate: str, head: str) -> tuple[int, int, int]:
    """(wins, losses, n) of two equally long outcome strings of ``'0'``/``'1'`` per item."""
    if len(candidate) != len(head):
        raise ValueError(f"outcomes of {len(candidate)} and {len(head)} items are not paired")
    wins = sum(1 for x, y in zip(candidate, head) if x == "1" and y == "0")
    losses = sum(1 for x, y in zip(candidate, head) if x == "0" and y == "1")
    return wins, losses, len(candidate)
