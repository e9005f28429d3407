"""The samplers: seeded and pure, without replacement, bounded, with their documented biases;
the replay buffer shared and bounded; the data delta hash canonical."""

from __future__ import annotations

import math
import random
import statistics

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.data.conversations import Conversation, Message, encode
from adapters.data.sampling import REPLAY_GENERATIONS, STRATEGIES, data_delta_hash, replay_buffer, sample, weights

NAMES = sorted(STRATEGIES)


def conv(cid: str, cycle: int, karma: float) -> Conversation:
    return Conversation(id=cid, cycle=cycle, karma=karma, messages=[Message("user", cid)])


def rich_pool(size: int = 400, seed: int = 7) -> list[Conversation]:
    rng = random.Random(seed)
    return [conv(f"c{i:04d}", rng.randint(1, 10_000), rng.uniform(-1, 1)) for i in range(size)]


pools = st.lists(
    st.builds(
        conv,
        st.text(min_size=1, max_size=6),
        st.integers(0, 100_000),
        st.floats(-1e6, 1e6, allow_nan=False),
    ),
    max_size=60,
    unique_by=lambda c: c.id,
)


@settings(max_examples=150, deadline=None)
@given(pools, st.integers(0, 80), st.sampled_from(NAMES), st.integers(0, 2**32))
def test_a_sample_is_deterministic_bounded_distinct_and_from_the_pool(
    pool: list[Conversation], n: int, strategy: str, seed: int
) -> None:
    ids = sample(pool, n, strategy, seed)
    assert ids == sample(pool, n, strategy, seed)
    assert ids == sample(list(reversed(pool)), n, strategy, seed)  # the pool's order is irrelevant
    assert len(ids) == min(n, len(pool))
    assert len(set(ids)) == len(ids)
    assert set(ids) <= {c.id for c in pool}


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(NAMES), st.integers(0, 2**32), st.integers(0, 2**32))
def test_distinct_seeds_give_distinct_samples_on_a_rich_pool(strategy: str, a: int, b: int) -> None:
    if a == b:
        return
    pool = rich_pool()
    assert sample(pool, 50, strategy, a) != sample(pool, 50, strategy, b)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32))
def test_distinct_strategies_give_distinct_samples_on_a_rich_pool(seed: int) -> None:
    pool = rich_pool()
    samples = [frozenset(sample(pool, 50, s, seed)) for s in NAMES]
    assert len(set(samples)) == len(NAMES)


def test_sampling_uses_no_global_randomness() -> None:
    pool = rich_pool()
    random.seed(1)
    first = {s: sample(pool, 30, s, 5) for s in NAMES}
    state = random.getstate()
    random.seed(2)
    assert {s: sample(pool, 30, s, 5) for s in NAMES} == first
    random.seed(1)
    for s in NAMES:
        sample(pool, 30, s, 5)
    assert random.getstate() == state


def mean_of(pool: list[Conversation], strategy: str, attr: str, seeds: int = 30) -> float:
    by_id = {c.id: c for c in pool}
    values = [getattr(by_id[i], attr) for seed in range(seeds) for i in sample(pool, 40, strategy, seed)]
    return statistics.fmean(values)


def test_recent_weighted_favours_recent_cycles() -> None:
    pool = [conv(f"c{i:04d}", 1 + i * 10, 0.5) for i in range(1000)]  # cycles 1..9991, even
    uniform = mean_of(pool, "uniform_sample", "cycle")
    recent = mean_of(pool, "recent_weighted", "cycle")
    assert abs(uniform - 5000) < 600  # no bias
    # w = exp(3 (c - newest) / span): the mean cycle is newest - span (1/3 - e^-3 / (1 - e^-3)) ~ 7180
    assert recent > 6600
    assert recent - uniform > 1200


def test_high_karma_weighted_favours_high_karma_and_avoids_violations() -> None:
    rng = random.Random(3)
    pool = [conv(f"c{i:04d}", 5, rng.uniform(-1, 1)) for i in range(1000)]
    uniform = mean_of(pool, "uniform_sample", "karma")
    karma = mean_of(pool, "high_karma_weighted", "karma")
    assert abs(uniform) < 0.1
    assert karma > 0.3 and karma - uniform > 0.3

    low = {c.id for c in pool if c.karma < -0.5}  # the worst quarter (e.g. law violations)

    def share(strategy: str) -> float:
        drawn = [i for seed in range(30) for i in sample(pool, 40, strategy, seed)]
        return sum(i in low for i in drawn) / len(drawn)
    assert share("high_karma_weighted") < share("uniform_sample") / 2


def test_the_documented_weights() -> None:
    pool = [conv("a", 100, -1.0), conv("b", 400, 0.0), conv("c", 1000, 2.0)]
    assert weights(pool, "uniform_sample") == [1.0, 1.0, 1.0]
    recent = weights(pool, "recent_weighted")  # exp((cycle - 1000) / (900 / 3))
    assert recent == pytest.approx([math.exp(-3), math.exp(-2), 1.0])
    karma = weights(pool, "high_karma_weighted")  # exp((karma - 2) / (3 / 12))
    assert karma == pytest.approx([math.exp(-12), math.exp(-8), 1.0])
    flat = [conv("a", 5, 1.0), conv("b", 5, 1.0)]
    assert weights(flat, "recent_weighted") == weights(flat, "high_karma_weighted") == [1.0, 1.0]


def test_an_unknown_strategy_or_a_negative_count_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown strategy 'newest'"):
        sample(rich_pool(10), 3, "newest", 0)
    with pytest.raises(ValueError, match="n must be >= 0"):
        sample(rich_pool(10), -1, "uniform_sample", 0)
    with pytest.raises(ValueError, match="size must be >= 0"):
        replay_buffer([["a"]], -1, 0)


# ---------------------------------------------------------------- replay


id_lists = st.lists(st.lists(st.sampled_from([f"x{i}" for i in range(40)]), max_size=30), max_size=5)


@settings(max_examples=150, deadline=None)
@given(id_lists, st.integers(0, 60), st.integers(0, 2**32))
def test_the_replay_buffer_is_deterministic_distinct_bounded_and_from_the_last_three(
    sources: list[list[str]], size: int, seed: int
) -> None:
    buf = replay_buffer(sources, size, seed)
    assert buf == replay_buffer([list(s) for s in sources], size, seed)  # every branch: the same
    assert len(buf) == len(set(buf))
    recent = set().union(*sources[:REPLAY_GENERATIONS]) if sources else set()
    assert set(buf) <= recent
    assert len(buf) == min(size, len(recent))


def test_each_of_the_last_three_generations_gets_an_equal_share() -> None:
    sources = [[f"g{g}-{i}" for i in range(100)] for g in range(4)]  # newest first
    buf = replay_buffer(sources, 30, seed=1)
    assert [sum(x.startswith(f"g{g}-") for x in buf) for g in range(4)] == [10, 10, 10, 0]
    small = [["s1", "s2"], *sources[1:3]]  # a small source's share goes to the others
    buf = replay_buffer(small, 30, seed=1)
    assert len(buf) == 30 and {"s1", "s2"} <= set(buf)
    assert replay_buffer(sources, 30, seed=2) != replay_buffer(sources, 30, seed=1)


# ---------------------------------------------------------------- delta hash


def test_the_data_delta_hash_is_blake3_of_the_canonical_sorted_encoding() -> None:
    pool = rich_pool(20)
    expected = blake3.blake3(b"".join(encode(c) + b"\n" for c in sorted(pool, key=lambda c: c.id))).hexdigest()
    assert data_delta_hash(pool) == expected == data_delta_hash(reversed(pool))
    changed = [*pool[:-1], conv(pool[-1].id, pool[-1].cycle, pool[-1].karma + 0.5)]
    assert data_delta_hash(changed) != expected
    assert data_delta_hash(pool[:-1]) != expected
    assert data_delta_hash([]) == blake3.blake3(b"").hexdigest()
