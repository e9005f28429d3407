"""The hash-chained ledger file: append, read, verify, recover.

Theory of operation
-------------------
Files in ``<home>``: ``ledger.jsonl`` (the truth), ``ledger.head`` (a hint: the last durable
``{"seq":S,"hash":H}``), ``ledger.lock`` (only ever ``flock``-ed, never written), and
``ledger.jsonl.torn-<seq>-<n>`` files (bytes recovery moved aside).

Writers serialise on an exclusive ``flock`` of ``ledger.lock``. Under it an append

1. reads the committed tail in O(1) by reading backwards from the end of the file (or reuses
   the tail of its own last append when the file's inode, size and mtime are as it left them);
2. after a fresh read: recovers a torn tail (see below) so that it never chains onto half a
   record, and refuses (``CorruptRecord``) to append if ``ledger.head`` names a record the
   ledger no longer has, which would otherwise overwrite the evidence of a truncation;
3. checks ``expected_seq`` (optimistic concurrency: the caller decided on a state that ended at
   that seq; if the ledger moved, ``ConcurrencyError`` and nothing is written);
4. writes the whole batch with one ``write`` (looping only on a short write), ``fdatasync``s the file
   (data and size: what reading the records back needs)
   (and the directory when it created the file), and only then updates ``ledger.head``.

If the ledger file at the path is no longer the one a ``Ledger`` has open (replaced or deleted),
it reopens it rather than append to a ghost; likewise for the lock file. A ledger file that is
gone while ``ledger.head`` is there is a lost history, never an empty one: every read and append
raises ``LedgerMissing`` and no new file is created (only the very first append, with no head
yet, creates the ledger).

``ledger.head`` (see ``headfile.py``) is updated only after the ledger is durable, so it may
trail the ledger after a crash but never leads it: a head naming a record the ledger lacks means
the ledger lost records (truncation or rollback), which ``verify`` reports.

Commit rule. A record is committed when its line is whole (ends in ``\\n``) and the batch it
belongs to is complete: its ``"more"`` key (see ``record.py``) is absent, or some later whole
record closes the batch. Readers (``tail``, ``records``, ``fold``) never show records past the
last committed one, so no reader can see half a batch even while a writer is mid-``write``.

Recovery (``recover``, and before every append that finds the file changed; see
``recovery.py``). If the file ends in bytes without a final newline, or in whole records of an
incomplete batch, everything from the start of that batch (or of the torn line) to the end of the
file is moved to a ``ledger.jsonl.torn-<first seq>-<n>`` file, never silently dropped. Anything
else that fails to verify (a bad hash, seq or prev anywhere) is corruption: it is reported with
its seq and never repaired.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from evo_core.errors import CorruptHistory, EnvironmentFault
from evo_core.events import Event
from ledger.record import GENESIS_PREV, CorruptRecord, Record, check_line, encode_batch, parse_head, parse_line
from ledger.headfile import HeadFile, check_head
from ledger.recovery import Torn, fsync_dir, move_aside
from ledger.tail import EMPTY, Checkpoint, Tail, line_before, parse_checkpoint, read_tail
from ledger.verify import VerifyReport, verify_file

LEDGER_FILE = "ledger.jsonl"
HEAD_FILE = "ledger.head"
LOCK_FILE = "ledger.lock"

A = TypeVar("A")

_READ_BUFFER = 1 << 20


class ConcurrencyError(EnvironmentFault):
    """The ledger moved since the caller read it: re-read, decide again, retry."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected the ledger to end at seq {expected}, it ends at seq {actual}")
        self.expected = expected
        self.actual = actual


class LedgerMissing(CorruptHistory):
    """``ledger.jsonl`` is gone but ``ledger.head`` says records were written: lost, not empty."""

    def __init__(self, path: Path, head_path: Path) -> None:
        super().__init__(
            f"{path} is missing but {head_path.name} says records were written: the ledger was deleted "
            f"or moved; put it back (from where it went, or a backup). evo never starts a new one over a lost history"
        )
        self.path = path


_clock: list[tuple[int, str]] = [(-1, "")]


def utc_now() -> str:
    """UTC ISO-8601 with milliseconds and ``Z`` (record metadata only)."""
    t = time.time()
    secs = int(t)
    cached_secs, prefix = _clock[0]
    if secs != cached_secs:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        _clock[0] = (secs, prefix)
    return "%s.%03dZ" % (prefix, int((t - secs) * 1000))


def _file_id(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class Ledger:
    """The ledger of one home directory. Safe to use from many processes at once (one
    ``Ledger`` object per thread: an object is not itself thread-safe). ``clock`` gives each
    batch its ``"at"`` (tests pass a fixed one to compare bytes)."""

    def __init__(
        self, home: str | os.PathLike[str], *, fsync: bool = True, clock: Callable[[], str] = utc_now
    ) -> None:
        self.home = Path(home)
        self.path = self.home / LEDGER_FILE
        self.head_path = self.home / HEAD_FILE
        self.lock_path = self.home / LOCK_FILE
        self.fsync = fsync
        self.clock = clock
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._head = HeadFile(self.head_path)
        # (inode, size, mtime) of the file after our last append, and its tail then
        self._tail_cache: tuple[tuple[int, int, int], Tail] | None = None
        self._fd_id: tuple[int, int] = (-1, -1)
        self._lock_id: tuple[int, int] = (-1, -1)
        self._locked = 0
        self.last_append_end: int | None = None  # byte offset after this object's last append

    # ------------------------------------------------------------------ plumbing

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._lock_fd = None
        self._head.close()
        self._tail_cache = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def lock(self, shared: bool = False) -> Iterator[None]:
        """Hold the writers' lock (re-entrant within this object)."""
        if self._locked:
            self._locked += 1
            try:
                yield
            finally:
                self._locked -= 1
            return
        self._acquire(shared)
        try:
            yield
        finally:
            self._release()

    def _acquire(self, shared: bool = False) -> None:
        while True:
            if self._lock_fd is None:
                self.home.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                self._lock_id = _file_id(os.fstat(self._lock_fd))
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                if _file_id(os.stat(self.lock_path)) == self._lock_id:
                    break
            except FileNotFoundError:
                pass
            os.close(self._lock_fd)  # the lock file was replaced: lock the one others will see
            self._lock_fd = None
        self._locked = 1

    def _release(self) -> None:
        self._locked = 0
        assert self._lock_fd is not None
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _open_for_append(self) -> tuple[bool, os.stat_result]:
        """Open the ledger file for appending: (created by this call?, its stat now)."""
        if self._fd is not None:
            try:
                st = os.stat(self.path)
                if _file_id(st) == self._fd_id:
                    return False, st
            except FileNotFoundError:
                pass
            os.close(self._fd)  # replaced or deleted behind our back: never append to a ghost
            self._fd = None
            self._tail_cache = None
        self.home.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
                created = False
                break
            except FileNotFoundError:
                self._check_not_lost()  # the first append creates the ledger; never a lost one's place
            try:
                self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
                break
            except FileExistsError:
                continue  # another writer created it meanwhile: open that one
        st = os.fstat(self._fd)
        self._fd_id = _file_id(st)
        return created, st

    def _check_not_lost(self) -> None:
        """Called when the ledger file is not there: ``LedgerMissing`` if ``ledger.head`` is."""
        if os.path.lexists(self.head_path):
            raise LedgerMissing(self.path, self.head_path)

    def _with_read_fd(self, fn: Callable[[int], A], empty: A) -> A:
        if self._fd is not None:
            return fn(self._fd)
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._check_not_lost()
            return empty
        try:
            return fn(fd)
        finally:
            os.close(fd)

    def _tail(self) -> Tail:
        return self._with_read_fd(read_tail, Tail(EMPTY, 0, 0, 0))

    # ------------------------------------------------------------------ reading

    def tail(self) -> Checkpoint:
        """The last committed record (``EMPTY`` for an empty ledger), in O(1)."""
        return self._tail().last

    def head(self) -> Checkpoint | None:
        """What ``ledger.head`` says (a hint that may trail the ledger), or None."""
        return self._head.read()

    def records(
        self, start_seq: int = 0, start_offset: int | None = None, *, prev: str = GENESIS_PREV
    ) -> Iterator[Record]:
        """Committed records from ``start_seq`` on, the chain verified as they stream.

        With ``start_offset`` reading starts there: it must be the byte offset where record
        ``start_seq`` begins, and ``prev`` the hash of record ``start_seq - 1``. Without it the
        file is read from its start (records before ``start_seq`` are verified, not yielded).
        Raises ``CorruptRecord`` at the first record that breaks the chain.
        """
        bound = self._tail().end
        if start_offset is None:
            seq, offset, skip_until = 0, 0, start_seq
            prev = GENESIS_PREV
        else:
            seq, offset, skip_until = start_seq, start_offset, start_seq
        if offset >= bound:
            return
        with open(self.path, "rb", buffering=_READ_BUFFER) as f:
            f.seek(offset)
            for line in f:
                offset += len(line)
                rec = parse_line(line, seq, prev, offset)
                prev = rec.hash
                if seq >= skip_until:
                    yield rec
                seq += 1
                if offset >= bound:
                    return

    def fold(
        self,
        fn: Callable[[A, Event], A],
        acc: A,
        *,
        start_seq: int = 0,
        start_offset: int = 0,
        prev: str = GENESIS_PREV,
    ) -> tuple[A, Checkpoint, int, int]:
        """Fold ``fn`` over the committed events from ``start_offset`` (record ``start_seq``).

        The hot path of replay: verifies like ``records`` but builds no ``Record`` objects.
        Returns ``(acc, last checkpoint, end offset, records folded)``.
        """
        tail = self._tail()
        bound = tail.end
        seq, offset = start_seq, start_offset
        last = Checkpoint(start_seq - 1, prev)
        if offset >= bound:
            return acc, last, offset, 0
        with open(self.path, "rb", buffering=_READ_BUFFER) as f:
            f.seek(offset)
            for line in f:
                offset += len(line)
                b, digest = check_line(line, seq, prev)
                acc = fn(acc, b.event)
                prev = digest
                seq += 1
                if offset >= bound:
                    break
        return acc, Checkpoint(seq - 1, prev), offset, seq - start_seq

    def holds(self, checkpoint: Checkpoint, offset: int) -> bool:
        """Does the file hold ``checkpoint``'s record, committed and ending at byte ``offset``?
        One read back from ``offset`` and one hash, whatever the ledger's length."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            if offset <= 0 or offset > os.fstat(fd).st_size:
                return False
            if os.pread(fd, 1, offset - 1) != b"\n":
                return False
            _start, line = line_before(fd, offset)
            seq, _prev, digest, more = parse_head(line, checkpoint.seq)
        except (CorruptRecord, OSError):
            return False
        finally:
            os.close(fd)
        return seq == checkpoint.seq and digest == checkpoint.hash and more == 0

    # ------------------------------------------------------------------ writing

    def append(self, events: Sequence[Event], *, expected_seq: int | None = None) -> Checkpoint:
        """Durably append ``events`` as one atomic batch; the checkpoint of its last record.

        ``expected_seq`` is the seq of the last record the caller saw (-1 for an empty ledger);
        if the ledger ends elsewhere, ``ConcurrencyError`` is raised and nothing is written.
        """
        if not events:
            raise ValueError("an append needs at least one event")
        owned = not self._locked  # re-entrant: an append inside ``with ledger.lock()``
        if owned:
            self._acquire()
        try:
            created, st = self._open_for_append()
            fd = self._fd
            assert fd is not None
            key = (st.st_ino, st.st_size, st.st_mtime_ns)
            cached = self._tail_cache
            if cached is not None and cached[0] == key:
                tail = cached[1]  # the file is as our own last append left it
            else:
                tail = read_tail(fd, st.st_size)
                if tail.end != tail.size:
                    move_aside(fd, self.path, tail)
                    tail = read_tail(fd)
                check_head(self._head.read_lenient(), tail.last)
                self._head.forget_if_stale()
            if expected_seq is not None and expected_seq != tail.last.seq:
                raise ConcurrencyError(expected_seq, tail.last.seq)
            data, last_hash = encode_batch(tail.last.seq + 1, tail.last.hash, events, self.clock())
            written = os.write(fd, data)
            while written < len(data):  # a short write (allowed by POSIX): finish the batch
                written += os.write(fd, memoryview(data)[written:])
            if self.fsync:
                os.fdatasync(fd)  # the data and the file size; mtime is not needed to read back
                if created:
                    fsync_dir(self.home)
            last = Checkpoint(tail.last.seq + len(events), last_hash)
            end = tail.end + len(data)
            self.last_append_end = end
            st = os.fstat(fd)
            self._tail_cache = ((st.st_ino, st.st_size, st.st_mtime_ns), Tail(last, end, end, last.seq + 1))
            self._head.write(last)
            return last
        finally:
            if owned:
                self._release()

    def recover(self) -> Torn | None:
        """Move a torn tail (or an incomplete batch) aside; what was moved, or None."""
        with self.lock():
            if not self.path.exists():
                return None
            self._open_for_append()
            assert self._fd is not None
            tail = read_tail(self._fd)
            if tail.end == tail.size:
                return None
            return move_aside(self._fd, self.path, tail)

    # ------------------------------------------------------------------ auditing

    def verify(self, checkpoint: Checkpoint | None = None) -> VerifyReport:
        """Verify the whole chain, the head hint and (optionally) an auditor's checkpoint."""
        try:
            with self.lock(shared=True):
                return self._verify(checkpoint)
        except PermissionError:  # a read-only auditor cannot create the lock file
            return self._verify(checkpoint)

    def _verify(self, checkpoint: Checkpoint | None) -> VerifyReport:
        try:
            return verify_file(self.path, self.head(), checkpoint)
        except ValueError as exc:
            return verify_file(self.path, None, checkpoint, head_error=str(exc))

__all__ = [
    "EMPTY",
    "Checkpoint",
    "ConcurrencyError",
    "Ledger",
    "LedgerMissing",
    "Torn",
    "VerifyReport",
    "parse_checkpoint",
    "utc_now",
]
