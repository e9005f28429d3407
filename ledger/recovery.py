"""Torn-tail recovery: move the bytes after the last committed record aside, never drop them.

Called under the writers' lock. The bytes (a final line without ``\\n``, or whole lines of a batch
whose last record never arrived, or both) are copied to ``ledger.jsonl.torn-<first seq>-<n>``
(``n`` keeps earlier copies), that file and the directory are fsynced, and only then is the
ledger truncated to the end of its last committed record and fsynced.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from ledger.tail import Tail


class Torn(msgspec.Struct, frozen=True):
    """Bytes recovery moved aside: ``length`` bytes from ``offset`` (first seq ``seq``)."""

    path: Path
    seq: int
    offset: int
    length: int


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    written = 0
    while written < len(data):
        written += os.write(fd, view[written:])


def move_aside(fd: int, ledger_path: Path, tail: Tail) -> Torn:
    """Move ``ledger[tail.end:tail.size]`` to a new torn file; truncate the ledger to ``tail.end``."""
    length = tail.size - tail.end
    data = os.pread(fd, length, tail.end)
    n = 0
    while True:
        path = ledger_path.with_name(f"{ledger_path.name}.torn-{tail.incomplete_seq}-{n}")
        try:
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            n += 1
    try:
        _write_all(out, data)
        os.fsync(out)
    finally:
        os.close(out)
    fsync_dir(ledger_path.parent)
    os.ftruncate(fd, tail.end)
    os.fsync(fd)
    return Torn(path, tail.incomplete_seq, tail.end, length)
