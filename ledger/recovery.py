"""Torn-tail recovery: move the bytes after the last committed record aside, never drop them.

Called under the writers' lock. The bytes (a final line without ``\\n``, or whole lines of a batch
whose last record never arrived, or both) are copied to ``ledger.jsonl.torn-<first seq>-<n>``
(``n`` keeps earlier copies), that file and the directory are fsynced, and only then is the
ledger truncated to the end of its last committed record and fsynced.

One file per torn tail, never a pile: a copy that fails (a full disk) is removed again, and a
later attempt at the same tail re-uses a ``torn-<seq>-<n>`` that already holds these bytes or a
beginning of them (an attempt that died mid-copy, or whose truncation failed) instead of making
another. Nothing is written for no bytes.
"""

from __future__ import annotations

import contextlib
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


def _reusable(path: Path, data: bytes) -> bytes | None:
    """What ``path`` holds if it is a copy of ``data`` or of a beginning of it, else None."""
    try:
        with open(path, "rb") as f:
            held = f.read(len(data) + 1)
    except OSError:
        return None
    return held if data.startswith(held) else None


def move_aside(fd: int, ledger_path: Path, tail: Tail) -> Torn | None:
    """Move ``ledger[tail.end:tail.size]`` to a torn file; truncate the ledger to ``tail.end``.
    None (and nothing written) when there are no bytes after ``tail.end``."""
    length = tail.size - tail.end
    if length <= 0:
        return None
    data = os.pread(fd, length, tail.end)
    n = 0
    while True:
        path = ledger_path.with_name(f"{ledger_path.name}.torn-{tail.incomplete_seq}-{n}")
        held = _reusable(path, data) if os.path.lexists(path) and not path.is_symlink() else None
        if held is not None:  # an earlier attempt at this very tail: finish its copy
            out = os.open(path, os.O_WRONLY | os.O_APPEND)
            data_left, made = data[len(held):], False
            break
        try:
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            data_left, made = data, True
            break
        except FileExistsError:
            n += 1
    try:
        _write_all(out, data_left)
        os.fsync(out)
    except BaseException:
        os.close(out)
        if made:
            with contextlib.suppress(OSError):
                os.unlink(path)  # a full disk leaves no empty or partial copy behind
        raise
    os.close(out)
    fsync_dir(ledger_path.parent)
    os.ftruncate(fd, tail.end)
    os.fsync(fd)
    return Torn(path, tail.incomplete_seq, tail.end, length)
