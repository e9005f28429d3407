"""The one JSON shape of a ledger record as people and scripts read it.

``evo log --json``, ``evo timeline --json`` and ``models/evolution_log.jsonl`` print one object
a line that starts with the same keys, ``{"seq", "at", "cycle", "type", "summary", "event"}``:
the record's sequence number, its append time (UTC ISO, metadata), the heartbeat cycle it
belongs to (``clocked``), the event's type, its one-line description and the event itself as
the ledger holds it. Each may add keys of its own after them (``log``: the record's ``hash``;
the evolution log: its ``action`` and the spec's keys).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from evo_core import events as ev

from projections.records import LedgerRecord
from projections.summary import describe


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    at: str
    cycle: int
    type: str
    summary: str
    event: ev.Event


E = TypeVar("E", bound="Entry")


class RecordEntry(Entry, frozen=True, kw_only=True):
    """``evo log --json``'s line: the entry and the record's hash."""

    hash: str


def entry(cls: type[E], cycle: int, record: LedgerRecord, **extra: Any) -> E:
    """``record`` at ``cycle`` as ``cls`` (``Entry`` or a subclass, whose own keys are ``extra``)."""
    return cls(
        seq=record.seq,
        at=record.at,
        cycle=cycle,
        type=ev.event_name(record.event),
        summary=describe(record.event),
        event=record.event,
        **extra,
    )
