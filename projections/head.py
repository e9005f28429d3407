"""GEN_HEAD and GEN_HEAD-PARENT, now and through history.

HEAD moves on exactly three events: GenerationRegistered (the genesis), Promoted (a cutover)
and RolledBack. ``head_history`` lists every move with the cycle it happened in, so "what was
HEAD at cycle C?" is the last move at or before C (``head_at``). A move's cycle is the latest
heartbeat's at that point, which matches ``asof.state_at(cycle=C)``: everything appended
before the first heartbeat past C.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import msgspec

from evo_core import events as ev

from projections.records import LedgerRecord, clocked
from projections.summary import short


class HeadChange(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    cycle: int
    at: str
    head: str
    parent: str | None
    previous: str | None
    why: str


def head_history(records: Iterable[LedgerRecord]) -> list[HeadChange]:
    """Every change of HEAD, oldest first."""
    parents: dict[str, str | None] = {}
    head: str | None = None
    out: list[HeadChange] = []

    def move(record: LedgerRecord, cycle: int, target: str, why: str) -> None:
        nonlocal head
        out.append(
            HeadChange(
                seq=record.seq,
                cycle=cycle,
                at=record.at,
                head=target,
                parent=parents.get(target),
                previous=head,
                why=why,
            )
        )
        head = target

    for cycle, record in clocked(records):
        e = record.event
        match e:
            case ev.GenerationRegistered():
                parents[e.generation] = None
                move(record, cycle, e.generation, "genesis registered")
            case ev.CandidateSpawned():
                parents[e.candidate] = e.parent
            case ev.Promoted():
                move(record, cycle, e.generation, f"promoted (proposal {short(e.proposal_hash)})")
            case ev.RolledBack():
                how = "automatic rollback" if e.automatic else "rollback"
                move(record, cycle, e.to_generation, f"{how}: {e.reason}")
    return out


def head_at(
    history: Sequence[HeadChange], *, cycle: int | None = None, seq: int | None = None
) -> HeadChange | None:
    """The HEAD in force at ``cycle`` (or just after record ``seq``): the last change at or
    before it. None if HEAD was not set yet. Exactly one of ``cycle`` / ``seq``."""
    if (cycle is None) == (seq is None):
        raise ValueError("give exactly one of cycle= or seq=")
    by_cycle = cycle is not None
    limit = cycle if cycle is not None else seq
    assert limit is not None
    found: HeadChange | None = None
    for change in history:
        if (change.cycle if by_cycle else change.seq) > limit:
            break
        found = change
    return found
