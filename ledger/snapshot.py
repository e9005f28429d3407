"""Snapshots: folded state cached every K records so that opening a long ledger costs O(tail).

Theory of operation
-------------------
A snapshot ``<home>/snapshots/<seq:012d>.snap`` is JSON ``{version, seq, hash, offset, state}``:
the state folded over records ``0..seq``, the hash of record ``seq`` and the byte offset just
after it. It is written to a temporary file and renamed into place (never fsynced: it is a
cache, and a snapshot lost or torn by a crash is simply ignored), and only the newest
``KEEP`` are kept.

``FileSnapshots`` keeps them there; ``MemorySnapshots`` (``ledger.memory``) in a list. Both
are a ``SnapshotStore``.

``latest_valid`` trusts a snapshot only if its ``version`` matches the reader's (the version names
the state schema, so a changed ``State`` invalidates old snapshots) and the ledger still holds,
ending exactly at ``offset``, a record with that ``seq`` and ``hash`` (``LedgerPort.holds``: one
read back from that offset, one blake3). Otherwise it tries the next older one, and finally
none: deleting or corrupting snapshots never changes what a load returns, only how long it
takes. Verifying the chain before ``seq`` is the ledger's ``verify``, not the snapshot's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from ledger.port import LedgerPort
from ledger.tail import Checkpoint

SNAPSHOT_DIR = "snapshots"
SUFFIX = ".snap"
KEEP = 2


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    seq: int
    hash: str
    offset: int
    state: msgspec.Raw


_decoder = msgspec.json.Decoder(Snapshot)
_encoder = msgspec.json.Encoder()


def snapshot_dir(home: str | os.PathLike[str]) -> Path:
    return Path(home) / SNAPSHOT_DIR


def snapshot_paths(home: str | os.PathLike[str]) -> list[Path]:
    """Snapshot files, newest first."""
    d = snapshot_dir(home)
    try:
        names = [n for n in os.listdir(d) if n.endswith(SUFFIX) and n[: -len(SUFFIX)].isdigit()]
    except FileNotFoundError:
        return []
    return [d / n for n in sorted(names, reverse=True)]


def write_snapshot(home: str | os.PathLike[str], snap: Snapshot, *, keep: int = KEEP) -> Path:
    """Write ``snap`` atomically and prune all but the newest ``keep``."""
    d = snapshot_dir(home)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{snap.seq:012d}{SUFFIX}"
    tmp = d / f".{snap.seq:012d}.{os.getpid()}.tmp"
    tmp.write_bytes(_encoder.encode(snap))
    os.replace(tmp, path)
    for old in snapshot_paths(home)[keep:]:
        try:
            old.unlink()
        except FileNotFoundError:
            pass
    return path


def read_snapshot(path: Path) -> Snapshot | None:
    try:
        return _decoder.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None


class SnapshotStore(Protocol):
    """Where an event store keeps its snapshots (a folder, or memory)."""

    def write(self, snap: Snapshot) -> None: ...

    def newest_first(self) -> Iterator[Snapshot]:
        """The snapshots that still read back, newest first."""
        ...


class FileSnapshots:
    """``<home>/snapshots``."""

    def __init__(self, home: str | os.PathLike[str], *, keep: int = KEEP) -> None:
        self.home = Path(home)
        self.keep = keep

    def write(self, snap: Snapshot) -> None:
        write_snapshot(self.home, snap, keep=self.keep)

    def newest_first(self) -> Iterator[Snapshot]:
        for path in snapshot_paths(self.home):
            snap = read_snapshot(path)
            if snap is not None:
                yield snap


def latest_valid(ledger: LedgerPort, snapshots: SnapshotStore, version: str) -> Snapshot | None:
    """The newest snapshot of this ``version`` that the ledger still backs, or None."""
    for snap in snapshots.newest_first():
        if snap.version == version and ledger.holds(Checkpoint(snap.seq, snap.hash), snap.offset):
            return snap
    return None
