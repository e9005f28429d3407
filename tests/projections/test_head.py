from __future__ import annotations

import pytest

from evo_core import commands as cmd
from evo_core.errors import RollbackError
from projections import head_at, head_history, state_at
from tests.projections.conftest import FAIR, GENESIS, GOOD, SIGNED, Sim

A = "Luna-G001-a-c100"


def test_history_lists_every_move_with_its_cycle(story: Sim) -> None:
    moves = head_history(story.records)
    assert [(m.cycle, m.head, m.previous) for m in moves] == [
        (0, GENESIS, None),
        (115, A, GENESIS),
        (150, GENESIS, A),
    ]
    assert moves[1].parent == GENESIS
    assert moves[1].why.startswith("promoted (proposal ")
    assert moves[2].why == "rollback: tone regressed in chat"
    for m in moves:
        assert story.records[m.seq].at == m.at


@pytest.mark.parametrize(
    ("cycle", "head"),
    [(0, GENESIS), (100, GENESIS), (114, GENESIS), (115, A), (120, A), (149, A), (150, GENESIS),
     (10_000, GENESIS)],
)
def test_head_at_cycle_around_promotion_and_rollback(story: Sim, cycle: int, head: str) -> None:
    found = head_at(head_history(story.records), cycle=cycle)
    assert found is not None and found.head == head
    assert state_at(story.records, cycle=cycle).head == head  # agrees with the full fold


def test_head_at_seq_and_before_genesis(story: Sim) -> None:
    moves = head_history(story.records)
    promoted = moves[1]
    assert head_at(moves, seq=promoted.seq - 1).head == GENESIS  # type: ignore[union-attr]
    assert head_at(moves, seq=promoted.seq).head == A  # type: ignore[union-attr]
    assert head_at([], cycle=5) is None
    with pytest.raises(ValueError):
        head_at(moves)
    with pytest.raises(ValueError):
        head_at(moves, cycle=1, seq=1)


def test_automatic_rollback_after_failed_burn_in(sim: Sim) -> None:
    sim.genesis()
    sim.beat(100)
    sim.window({"a": GOOD, "b": FAIR})
    sim.approve()
    sim.shadow_and_promote()
    sim.burn_in(errors=50)
    moves = head_history(sim.records)
    assert [m.head for m in moves] == [GENESIS, A, GENESIS]
    assert moves[-1].why.startswith("automatic rollback: burn-in failed")
    assert sim.state.head == GENESIS


def test_a_rolled_back_generation_is_revoked_for_good(story: Sim) -> None:
    """Issue 13: no rollback returns to a generation a rollback took off HEAD."""
    with pytest.raises(RollbackError, match="revoked"):
        story.do(cmd.Rollback(**SIGNED, operator="travis", to=A, reason="it was fine after all"))
    assert head_history(story.records)[-1].head == GENESIS
