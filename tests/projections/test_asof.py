from __future__ import annotations

from typing import Iterator

import pytest

from evo_core.errors import InvalidInput
from evo_core.evolve import fold
from evo_core.state import Phase
from ledger import Record
from projections import state_at
from tests.projections.conftest import GENESIS, Sim

A = "Luna-G001-a-c100"


def test_no_point_is_the_whole_ledger(story: Sim) -> None:
    assert state_at(story.records) == story.state == fold(r.event for r in story.records)


def test_by_seq_includes_that_record(story: Sim) -> None:
    promoted = next(r.seq for r in story.records if type(r.event).__name__ == "Promoted")
    assert state_at(story.records, seq=promoted - 1).head == GENESIS
    after = state_at(story.records, seq=promoted)
    assert after.head == A and after.phase is Phase.BURN_IN
    assert state_at(story.records, seq=10**9) == story.state


def test_by_cycle_includes_everything_appended_during_that_cycle(story: Sim) -> None:
    at100 = state_at(story.records, cycle=100)
    assert at100.cycle == 100
    assert at100.phase is Phase.PROPOSED  # the whole window ran during cycle 100
    assert state_at(story.records, cycle=99).phase is Phase.IDLE
    assert state_at(story.records, cycle=0).head == GENESIS
    at115 = state_at(story.records, cycle=115)
    assert at115.head == A and at115.cycle == 115


def test_stops_reading_once_past_the_point(story: Sim) -> None:
    seen: list[int] = []

    def records() -> Iterator[Record]:
        for r in story.records:
            seen.append(r.seq)
            yield r

    state_at(records(), cycle=5)
    assert len(seen) < 10


def test_bad_points(story: Sim) -> None:
    with pytest.raises(InvalidInput):
        state_at(story.records, seq=1, cycle=1)
    with pytest.raises(InvalidInput):
        state_at(story.records, seq=-1)
    with pytest.raises(InvalidInput):
        state_at(story.records, cycle=-1)
