"""The ledger contract (``contract.py``) run on each ledger: the file and the in-memory one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import FileSnapshots, Ledger, LedgerPort, MemoryLedger, MemorySnapshots, SnapshotStore
from tests.ledger.contract import Backend, LedgerContract, fixed_clock


class FileBackend(Backend):
    def __init__(self, home: Path) -> None:
        self.home = home

    def open(self) -> LedgerPort:
        return Ledger(self.home, fsync=False, clock=fixed_clock)

    def snapshots(self) -> SnapshotStore:
        return FileSnapshots(self.home)

    def data(self) -> bytes:
        path = self.home / "ledger.jsonl"
        return path.read_bytes() if path.exists() else b""


class MemoryBackend(Backend):
    def __init__(self) -> None:
        self.ledger = MemoryLedger(clock=fixed_clock)
        self._snapshots = MemorySnapshots()

    def open(self) -> LedgerPort:
        return self.ledger  # one object is one ledger: every handle shares it

    def snapshots(self) -> SnapshotStore:
        return self._snapshots

    def data(self) -> bytes:
        return self.ledger.to_bytes()


class TestFileLedger(LedgerContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[Backend]:
        yield FileBackend(tmp_path / "home")


class TestMemoryLedger(LedgerContract):
    @pytest.fixture
    def backend(self) -> Iterator[Backend]:
        yield MemoryBackend()
