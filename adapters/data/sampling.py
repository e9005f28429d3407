"""The data strategies: seeded samplers of a window's new conversations, and the replay buffer.

Pure functions of their arguments: each draws from its own ``random.Random(seed)``, and the pool
is put in id order first, so the result does not depend on the order the pool was given in.

Weighted sampling without replacement uses Efraimidis–Spirakis keys: item i with weight w_i
draws u_i ~ U(0, 1) and gets the key ``u_i ** (1 / w_i)`` (computed as ``log(u_i) / w_i``); the
n largest keys are the sample. Each strategy's weight:

- ``uniform_sample``: w = 1.
- ``recent_weighted``: ``w = exp((cycle - newest) / tau)`` with ``tau = span / 3``, ``span`` the
  pool's newest minus oldest cycle (w = 1 for all when span = 0). The newest conversation weighs
  1, the oldest ``exp(-3) ~ 0.05``: about 20 times less, whatever the window's length.
- ``high_karma_weighted``: ``w = exp((karma - top) / t)`` with ``t = spread / 3``, ``spread`` the
  pool's highest minus lowest karma and ``top`` the highest (a softmax of karma at temperature
  t). The best conversation weighs 1, the worst ``exp(-12)``: much sharper than recency,
  because a strategy that weights karma must keep the rare low-karma conversations (which may
  show the agent breaking a law) out of its sample: at ``exp(-3)`` a 200-of-500 sample of the
  demo world drew 1-4 of them and at ``exp(-6)`` 0-3, enough for a 1M-parameter student to
  learn a violation; at ``exp(-12)`` none in 40 samples.

``replay_buffer`` mixes the training data of the last 3 generations (newest first) into one
list, the same for every branch of a window (it takes no strategy); ``data_delta_hash`` is the
blake3 of a window's new conversations, recorded in the manifest.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence

import blake3

from adapters.data.conversations import Conversation, encode

REPLAY_GENERATIONS = 3
SPREAD = 3.0  # recency: the weight ratio between the two ends of a pool is exp(SPREAD)
KARMA_SPREAD = 12.0  # karma: the same, sharper


def _recent(pool: Sequence[Conversation]) -> list[float]:
    newest = max(c.cycle for c in pool)
    span = newest - min(c.cycle for c in pool)
    if span == 0:
        return [0.0] * len(pool)
    tau = span / SPREAD
    return [(c.cycle - newest) / tau for c in pool]


def _karma(pool: Sequence[Conversation]) -> list[float]:
    top = max(c.karma for c in pool)
    spread = top - min(c.karma for c in pool)
    if spread == 0:
        return [0.0] * len(pool)
    t = spread / KARMA_SPREAD
    return [(c.karma - top) / t for c in pool]


def _uniform(pool: Sequence[Conversation]) -> list[float]:
    return [0.0] * len(pool)


# strategy -> log-weights of the pool (log w, so that exp never under- or overflows)
STRATEGIES: dict[str, Callable[[Sequence[Conversation]], list[float]]] = {
    "recent_weighted": _recent,
    "uniform_sample": _uniform,
    "high_karma_weighted": _karma,
}


def weights(pool: Sequence[Conversation], strategy: str) -> list[float]:
    """Each conversation's sampling weight under ``strategy`` (the pool's order)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of: {', '.join(STRATEGIES)}")
    return [math.exp(lw) for lw in STRATEGIES[strategy](pool)] if pool else []


def sample(pool: Sequence[Conversation], n: int, strategy: str, seed: int) -> list[str]:
    """``min(n, len(pool))`` distinct ids drawn without replacement (best key first)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; one of: {', '.join(STRATEGIES)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    ordered = sorted({c.id: c for c in pool}.values(), key=lambda c: c.id)
    if not ordered or n == 0:
        return []
    rng = random.Random(seed)
    keyed = []
    for conv, log_w in zip(ordered, STRATEGIES[strategy](ordered)):
        u = 1.0 - rng.random()  # (0, 1]: log(u) is finite
        keyed.append((math.log(u) * math.exp(-log_w), conv.id))
    keyed.sort(key=lambda kv: (-kv[0], kv[1]))
    return [cid for _, cid in keyed[:n]]


def replay_buffer(sources: Sequence[Iterable[str]], size: int, seed: int) -> list[str]:
    """Up to ``size`` distinct ids from the training data of the last ``REPLAY_GENERATIONS``
    generations (``sources`` newest first; older ones are ignored).

    Each source is shuffled with ``Random(seed)`` and the sources are drawn from in turn, newest
    first, skipping ids already taken, so each generation gets an equal share and a small source's
    unused share goes to the others. The same arguments give the same list: every branch of a
    window gets the same buffer.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    rng = random.Random(seed)
    queues: list[list[str]] = []
    for source in sources[:REPLAY_GENERATIONS]:
        ids = sorted(set(source))
        rng.shuffle(ids)
        queues.append(ids[::-1])  # pop() from the end takes the shuffled order
    chosen: list[str] = []
    taken: set[str] = set()
    while len(chosen) < size and any(queues):
        for queue in queues:
            while queue and queue[-1] in taken:
                queue.pop()
            if queue and len(chosen) < size:
                cid = queue.pop()
                taken.add(cid)
                chosen.append(cid)
    return chosen


def data_delta_hash(conversations: Iterable[Conversation]) -> str:
    """blake3 over the canonical encodings of the conversations sorted by id, one per line."""
    h = blake3.blake3()
    for conv in sorted(conversations, key=lambda c: c.id):
        h.update(encode(conv) + b"\n")
    return h.hexdigest()
