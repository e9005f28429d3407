"""The ledger port: what the event store and the shell ask of a ledger.

Theory of operation
-------------------
A ledger is a hash-chained sequence of committed records, seq 0, 1, 2, ... (DESIGN.md, "The
ledger contract"). A position in it is a ``Checkpoint`` (seq and hash; ``EMPTY`` before the
first record) and the byte offset just after that record in the ledger's JSONL encoding. Every
implementation encodes records with ``record.encode_batch``, so records, hashes and offsets are
the same whichever holds them: a reader resumes where it stopped (``records``/``fold`` with
``start_offset`` and the ``prev`` hash) and a snapshot names where its state ends.

- ``append`` adds a batch atomically. With ``expected_seq`` (the seq of the last record the
  caller decided on; -1 for an empty ledger) it is an optimistic-concurrency append: if the
  ledger ends elsewhere it raises ``ConcurrencyError`` and writes nothing. A batch with no
  events, a non-event or a non-finite float is refused (``ValueError``/``TypeError``), also
  before anything is written. It returns the checkpoint of the batch's last record and sets
  ``last_append_end`` to the offset after it.
- Readers see committed records only, never part of a batch. A resume point that does not
  chain (wrong ``prev`` or offset) raises ``CorruptRecord``.
- ``holds`` answers "does record ``seq`` with this hash end at this offset, at a batch's end?"
  in O(1): what a cached state or a snapshot needs before it is trusted.

Two ledgers implement it and pass one contract (``tests/ledger/contract.py``):
``ledger.store.Ledger``, the file, and ``ledger.memory.MemoryLedger``, the same bytes in memory.
Snapshots, a cache of folded state kept beside a ledger, have their own port: ``SnapshotStore``
in ``ledger.snapshot``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar, runtime_checkable

from evo_core.events import Event
from ledger.record import GENESIS_PREV, Record
from ledger.tail import Checkpoint
from ledger.verify import VerifyReport

A = TypeVar("A")


@runtime_checkable
class LedgerPort(Protocol):
    @property
    def last_append_end(self) -> int | None:
        """The offset just after this handle's last append (None before its first)."""
        ...

    def tail(self) -> Checkpoint:
        """The last committed record, ``EMPTY`` for an empty ledger."""
        ...

    def records(
        self, start_seq: int = 0, start_offset: int | None = None, *, prev: str = GENESIS_PREV
    ) -> Iterator[Record]:
        """Committed records from ``start_seq`` on; with ``start_offset`` (where record
        ``start_seq`` begins) and ``prev`` (the hash before it) reading resumes there."""
        ...

    def fold(
        self,
        fn: Callable[[A, Event], A],
        acc: A,
        *,
        start_seq: int = 0,
        start_offset: int = 0,
        prev: str = GENESIS_PREV,
    ) -> tuple[A, Checkpoint, int, int]:
        """``fn`` folded over the committed events from record ``start_seq`` (which begins at
        ``start_offset``): ``(acc, last checkpoint, end offset, records folded)``."""
        ...

    def append(self, events: Sequence[Event], *, expected_seq: int | None = None) -> Checkpoint:
        """Append ``events`` as one atomic batch; the checkpoint of its last record."""
        ...

    def holds(self, checkpoint: Checkpoint, offset: int) -> bool:
        """Does the ledger hold ``checkpoint``'s record, committed and ending at ``offset``?"""
        ...

    def verify(self, checkpoint: Checkpoint | None = None) -> VerifyReport:
        """The whole chain verified, and that it still extends an auditor's ``checkpoint``."""
        ...

    def close(self) -> None: ...


__all__ = ["LedgerPort"]
