"""The event store: the ledger, the core's fold, snapshots and optimistic concurrency together.

Theory of operation
-------------------
``load`` = the newest valid snapshot (or the empty state) + ``evolve`` folded over the records
after it. When that tail is at least ``snapshot_every`` records long a new snapshot is written,
so the next open costs O(tail) again. An ``EventStore`` also keeps the last state it loaded in
memory and reuses it when the ledger still ends that record at that offset (an O(1) check),
so a long-running process folds only what other processes appended.

``execute(decide_fn)`` is "decide, then persist": load, call ``decide_fn(state)``, append the
returned events with ``expected_seq`` = the seq the decision was based on. If another writer got
in first the append raises ``ConcurrencyError`` and nothing was written: the store folds the new
records and decides again. Domain errors from ``decide_fn`` propagate and nothing is appended.

The store asks of its ledger only the ``LedgerPort`` (``ledger/port.py``) and of its snapshots a
``SnapshotStore``: given a home directory it opens the ledger file and ``snapshots/`` there;
given a ``MemoryLedger`` the same code runs in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

import msgspec

from evo_core.events import Event
from ledger.memory import MemorySnapshots
from ledger.port import LedgerPort
from ledger.snapshot import FileSnapshots, Snapshot, SnapshotStore, latest_valid
from ledger.store import EMPTY, Checkpoint, ConcurrencyError, Ledger

S = TypeVar("S")

SNAPSHOT_FORMAT = "evo-ledger-snapshot/1"


class Fold(msgspec.Struct, Generic[S], frozen=True):
    """How state is built from events (the core's, or a test's) and how it is snapshotted."""

    initial: Callable[[], S]
    evolve: Callable[[S, Event], S]
    encode: Callable[[S], bytes]
    decode: Callable[[bytes], S]
    version: str


def core_fold() -> Fold[Any]:
    """``evo_core``'s ``State()`` and ``evolve``; snapshots named after ``STATE_VERSION``."""
    from evo_core.evolve import evolve
    from evo_core.state import STATE_VERSION, State

    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(State)
    return Fold(
        initial=State,
        evolve=evolve,
        encode=encoder.encode,
        decode=decoder.decode,
        version=f"{SNAPSHOT_FORMAT};{STATE_VERSION}",
    )


class Loaded(msgspec.Struct, Generic[S], frozen=True):
    """A folded state, the last record folded into it, and the byte offset just after it."""

    state: S
    checkpoint: Checkpoint
    offset: int


class EventStore(Generic[S]):
    """Over ``ledger``: a home directory (its ledger file and snapshots folder) or any
    ``LedgerPort`` (e.g. a ``MemoryLedger``; snapshots then in memory unless given)."""

    def __init__(
        self,
        ledger: str | os.PathLike[str] | LedgerPort,
        *,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int = 10_000,
        fsync: bool = True,
        fold: Fold[S] | None = None,
    ) -> None:
        self.ledger: LedgerPort
        self.snapshots: SnapshotStore
        if isinstance(ledger, (str, os.PathLike)):
            self.ledger = Ledger(ledger, fsync=fsync)
            self.snapshots = snapshots if snapshots is not None else FileSnapshots(ledger)
        else:
            self.ledger = ledger
            self.snapshots = snapshots if snapshots is not None else MemorySnapshots()
        self.snapshot_every = snapshot_every
        self.fold: Fold[S] = fold if fold is not None else core_fold()
        self._cache: Loaded[S] | None = None
        self._snapshot_seq = -1

    def close(self) -> None:
        self.ledger.close()

    def __enter__(self) -> EventStore[S]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def _start(self) -> Loaded[S]:
        cache = self._cache
        if cache is not None and (
            cache.checkpoint.seq < 0
            or self.ledger.holds(cache.checkpoint, cache.offset)
        ):
            return cache
        self._cache = None
        snap = latest_valid(self.ledger, self.snapshots, self.fold.version)
        if snap is not None:
            try:
                state = self.fold.decode(bytes(snap.state))
            except (msgspec.DecodeError, ValueError, TypeError):
                state = None
            if state is not None:
                self._snapshot_seq = snap.seq
                return Loaded(state, Checkpoint(snap.seq, snap.hash), snap.offset)
        self._snapshot_seq = -1
        return Loaded(self.fold.initial(), EMPTY, 0)

    def load(self) -> Loaded[S]:
        """The current state: latest valid snapshot (or cache) + fold of the tail."""
        start = self._start()
        state, last, offset, _n = self.ledger.fold(
            self.fold.evolve,
            start.state,
            start_seq=start.checkpoint.seq + 1,
            start_offset=start.offset,
            prev=start.checkpoint.hash,
        )
        loaded = Loaded(state, last, offset)
        self._cache = loaded
        if last.seq - self._snapshot_seq >= self.snapshot_every:
            self.snapshot(loaded)
        return loaded

    def snapshot(self, loaded: Loaded[S] | None = None) -> None:
        """Write a snapshot of ``loaded`` (default: a fresh load)."""
        loaded = loaded if loaded is not None else self.load()
        if loaded.checkpoint.seq < 0:
            return
        self.snapshots.write(
            Snapshot(
                version=self.fold.version,
                seq=loaded.checkpoint.seq,
                hash=loaded.checkpoint.hash,
                offset=loaded.offset,
                state=msgspec.Raw(self.fold.encode(loaded.state)),
            ),
        )
        self._snapshot_seq = loaded.checkpoint.seq

    # ------------------------------------------------------------------ writing

    def execute(
        self, decide_fn: Callable[[S], Sequence[Event]], *, retries: int = 50
    ) -> tuple[S, Checkpoint, list[Event]]:
        """Decide on the current state and append the result atomically, retrying on conflict.

        Returns the state after the new events, the checkpoint of the last record, and the
        events appended (``[]`` and nothing written if ``decide_fn`` returned none).
        """
        loaded = self.load()
        for _attempt in range(retries + 1):
            events = list(decide_fn(loaded.state))
            if not events:
                return loaded.state, loaded.checkpoint, []
            try:
                cp = self.ledger.append(events, expected_seq=loaded.checkpoint.seq)
            except ConcurrencyError:
                loaded = self.load()
                continue
            state = loaded.state
            for event in events:
                state = self.fold.evolve(state, event)
            end = self.ledger.last_append_end
            self._cache = Loaded(state, cp, end) if end is not None else None
            return state, cp, events
        raise ConcurrencyError(loaded.checkpoint.seq, self.ledger.tail().seq)


__all__ = ["EventStore", "Fold", "Loaded", "core_fold"]
