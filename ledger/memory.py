"""The ledger in memory: the same records, hashes and offsets as the file, with no file.

``MemoryLedger`` encodes every batch with ``encode_batch``, exactly as ``Ledger`` does, keeps
its lines and the records read back from them (``parse_line``: an event that would not decode
from the file is refused here too), and so passes the same contract (``tests/ledger/contract.py``):
given the same clock, ``to_bytes()`` is byte for byte the file the file ledger would write.
A batch becomes visible to readers in one step, so there is no torn tail to recover. One object
is one ledger: the event stores that share it see each other's appends (and conflict, as
processes sharing a file do); like a ``Ledger`` object it is not itself thread-safe.
``MemorySnapshots`` is the ``SnapshotStore`` to go with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from evo_core.events import Event
from ledger.record import GENESIS_PREV, CorruptRecord, Record, encode_batch, parse_line
from ledger.snapshot import KEEP, Snapshot
from ledger.store import ConcurrencyError, utc_now
from ledger.tail import EMPTY, Checkpoint
from ledger.verify import VerifyReport, verify_lines

A = TypeVar("A")


class MemoryLedger:
    def __init__(self, *, clock: Callable[[], str] = utc_now) -> None:
        self.clock = clock
        self.last_append_end: int | None = None
        self._lines: list[bytes] = []
        self._records: list[Record] = []

    def close(self) -> None:
        pass

    def __enter__(self) -> MemoryLedger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def tail(self) -> Checkpoint:
        records = self._records
        if not records:
            return EMPTY
        last = records[-1]
        return Checkpoint(last.seq, last.hash)

    def _resume(self, records: list[Record], seq: int, offset: int, prev: str) -> int:
        """Check that record ``seq`` begins at ``offset`` after ``prev``; how many records to read
        up to (0: ``offset`` is at or past the end, where the file finds no bytes to read)."""
        count = len(records)
        if count == 0 or offset >= records[-1].end:
            return 0
        if not 0 <= seq < count:
            raise CorruptRecord(seq, f"no record {seq} begins at offset {offset}")
        begins = records[seq - 1].end if seq > 0 else 0
        before = records[seq - 1].hash if seq > 0 else GENESIS_PREV
        if offset != begins:
            raise CorruptRecord(seq, f"record {seq} begins at offset {begins}, not {offset}")
        if prev != before:
            raise CorruptRecord(seq, "prev does not match the previous record's hash")
        return count

    def records(
        self, start_seq: int = 0, start_offset: int | None = None, *, prev: str = GENESIS_PREV
    ) -> Iterator[Record]:
        records = self._records
        count = len(records)
        if start_offset is not None:
            count = self._resume(records, start_seq, start_offset, prev)
        for i in range(max(start_seq, 0), count):
            yield records[i]

    def fold(
        self,
        fn: Callable[[A, Event], A],
        acc: A,
        *,
        start_seq: int = 0,
        start_offset: int = 0,
        prev: str = GENESIS_PREV,
    ) -> tuple[A, Checkpoint, int, int]:
        records = self._records
        count = self._resume(records, start_seq, start_offset, prev)
        if count == 0:
            return acc, Checkpoint(start_seq - 1, prev), start_offset, 0
        for i in range(start_seq, count):
            acc = fn(acc, records[i].event)
        last = records[count - 1]
        return acc, Checkpoint(last.seq, last.hash), last.end, count - start_seq

    def holds(self, checkpoint: Checkpoint, offset: int) -> bool:
        records = self._records
        if not 0 <= checkpoint.seq < len(records):
            return False
        rec = records[checkpoint.seq]
        return rec.hash == checkpoint.hash and rec.end == offset and rec.more == 0

    def to_bytes(self) -> bytes:
        """The ledger file these records make."""
        return b"".join(self._lines)

    # ------------------------------------------------------------------ writing

    def append(self, events: Sequence[Event], *, expected_seq: int | None = None) -> Checkpoint:
        if not events:
            raise ValueError("an append needs at least one event")
        last = self.tail()
        if expected_seq is not None and expected_seq != last.seq:
            raise ConcurrencyError(expected_seq, last.seq)
        data, _hash = encode_batch(last.seq + 1, last.hash, events, self.clock())
        lines = [line + b"\n" for line in data.split(b"\n")[:-1]]
        end = self._records[-1].end if self._records else 0
        seq, prev = last.seq + 1, last.hash
        batch: list[Record] = []
        for line in lines:
            end += len(line)
            rec = parse_line(line, seq, prev, end)
            batch.append(rec)
            seq, prev = seq + 1, rec.hash
        self._lines.extend(lines)
        self._records.extend(batch)  # one step: a reader sees the whole batch or none of it
        self.last_append_end = end
        return Checkpoint(batch[-1].seq, batch[-1].hash)

    # ------------------------------------------------------------------ auditing

    def verify(self, checkpoint: Checkpoint | None = None) -> VerifyReport:
        return verify_lines(list(self._lines), None, checkpoint)


class MemorySnapshots:
    """Snapshots in a list, the newest ``keep`` kept."""

    def __init__(self, *, keep: int = KEEP) -> None:
        self.keep = keep
        self._snaps: list[Snapshot] = []

    def write(self, snap: Snapshot) -> None:
        kept = [s for s in self._snaps if s.seq != snap.seq]
        self._snaps = sorted([*kept, snap], key=lambda s: s.seq, reverse=True)[: self.keep]

    def newest_first(self) -> Iterator[Snapshot]:
        yield from list(self._snaps)


__all__ = ["MemoryLedger", "MemorySnapshots"]
