"""The state as it was: "what was HEAD at cycle 41 000?"

``state_at(records, seq=S)`` folds records 0..S. ``state_at(records, cycle=C)`` folds every
record up to, not including, the first Heartbeat with a cycle past C: so it includes what the
runner and the operator appended during cycle C. Records must come in ledger order; reading
stops as soon as the point is passed.
"""

from __future__ import annotations

from typing import Callable, Iterable

from evo_core.errors import InvalidInput
from evo_core.events import Event, Heartbeat
from evo_core.evolve import evolve
from evo_core.state import State

from projections.records import LedgerRecord


def state_at(
    records: Iterable[LedgerRecord],
    *,
    seq: int | None = None,
    cycle: int | None = None,
    step: Callable[[State, Event], State] = evolve,
) -> State:
    """The folded state as of record ``seq`` or heartbeat ``cycle`` (neither: the end), folded
    with ``step`` (the shell passes its verified fold's)."""
    if seq is not None and cycle is not None:
        raise InvalidInput("give a seq or a cycle, not both")
    if seq is not None and seq < 0:
        raise InvalidInput(f"seq must be >= 0, got {seq}")
    if cycle is not None and cycle < 0:
        raise InvalidInput(f"cycle must be >= 0, got {cycle}")
    state = State()
    for record in records:
        e = record.event
        if seq is not None and record.seq > seq:
            break
        if cycle is not None and isinstance(e, Heartbeat) and e.cycle > cycle:
            break
        state = step(state, e)
    return state
