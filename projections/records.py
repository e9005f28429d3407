"""What every projection reads: ledger records, as any object with ``seq``, ``at`` and ``event``.

The ledger's own ``Record`` matches ``LedgerRecord`` structurally, so projections never import
the ledger (they stay pure: values in, values out). ``at`` is the UTC ISO time of the append:
metadata for auditors, never an input to a decision. The scheduler's clock is the heartbeat
cycle; ``clocked`` pairs each record with the latest heartbeat cycle at that point.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Protocol, TypeVar

from evo_core.events import Event, Heartbeat


class LedgerRecord(Protocol):
    @property
    def seq(self) -> int: ...

    @property
    def at(self) -> str: ...

    @property
    def event(self) -> Event: ...


R = TypeVar("R", bound=LedgerRecord)


def clocked(records: Iterable[R]) -> Iterator[tuple[int, R]]:
    """(cycle, record) for every record; a Heartbeat carries its own cycle, any other record
    the cycle of the latest heartbeat before it (0 before the first)."""
    cycle = 0
    for record in records:
        event = record.event
        if isinstance(event, Heartbeat):
            cycle = event.cycle
        yield cycle, record
