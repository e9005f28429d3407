"""Checkpoints, and finding the last committed record by reading a ledger file backwards.

A record is committed when its line is whole and its batch complete (see ``record.py``): the
tail is the last whole line without a ``"more"`` key. Reading backwards from the end of the file
finds it with one or two ``pread`` calls; only after a crash that cut a batch does it step back
over that batch's whole lines, one per record.
"""

from __future__ import annotations

import os

import msgspec

from ledger.record import GENESIS_PREV, parse_head

_CHUNK = 2048


class Checkpoint(msgspec.Struct, frozen=True):
    """A record's position in the chain: its seq and hash (seq -1 = the empty ledger)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


EMPTY = Checkpoint(-1, GENESIS_PREV)


def parse_checkpoint(text: str) -> Checkpoint:
    """``"seq:hash"`` (as printed by ``str(Checkpoint)``) to a checkpoint; ``ValueError`` if bad."""
    seq_text, sep, digest = text.strip().partition(":")
    if not sep or not seq_text.isdigit() or not seq_text.isascii():
        raise ValueError(f"checkpoint must look like SEQ:HASH (e.g. 12:ab12...), got {text!r}")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ValueError(f"checkpoint hash must be 64 lowercase hex characters, got {digest!r}")
    return Checkpoint(int(seq_text), digest)


class Tail(msgspec.Struct, frozen=True):
    """The committed tail of a file and where the bytes after it (if any) start."""

    last: Checkpoint  # the last committed record
    end: int  # byte offset just after it
    size: int  # file size when read
    incomplete_seq: int  # first seq not committed (== last.seq + 1)


def line_before(fd: int, end: int) -> tuple[int, bytes]:
    """The line ending at ``end`` (``end - 1`` is its last byte): ``(start, bytes)``."""
    size = _CHUNK
    while True:
        lo = max(0, end - size)
        chunk = os.pread(fd, end - lo, lo)
        i = chunk.rfind(b"\n", 0, len(chunk) - 1)
        if i >= 0:
            return lo + i + 1, chunk[i + 1 :]
        if lo == 0:
            return 0, chunk
        size *= 4


def last_newline_end(fd: int, size: int) -> int:
    """Offset just after the file's last ``\\n`` (0 if it has none)."""
    end, step = size, _CHUNK
    while end > 0:
        lo = max(0, end - step)
        chunk = os.pread(fd, end - lo, lo)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return lo + i + 1
        end, step = lo, step * 4
    return 0


def read_tail(fd: int, size: int | None = None) -> Tail:
    """The last committed record, read backwards from the end (O(1) unless a batch is cut)."""
    if size is None:
        size = os.fstat(fd).st_size
    end = last_newline_end(fd, size)
    while end > 0:
        start, line = line_before(fd, end)
        seq, _prev, digest, more = parse_head(line)
        if more == 0:
            return Tail(Checkpoint(seq, digest), end, size, seq + 1)
        end = start
    return Tail(EMPTY, 0, size, 0)
