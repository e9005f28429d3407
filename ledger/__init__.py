"""The hash-chained JSONL ledger: append, read, verify, recover, snapshot (see DESIGN.md).

``LedgerPort`` is what the rest of evo asks of a ledger; ``Ledger`` (the file) and
``MemoryLedger`` implement it and pass one contract (``tests/ledger/contract.py``).
"""

from ledger.eventstore import EventStore, Fold, Loaded, core_fold
from ledger.memory import MemoryLedger, MemorySnapshots
from ledger.port import LedgerPort
from ledger.record import (
    GENESIS_PREV,
    CorruptRecord,
    Record,
    encode_batch,
    parse_line,
    record_hash,
)
from ledger.snapshot import FileSnapshots, Snapshot, SnapshotStore, latest_valid, write_snapshot
from ledger.store import (
    EMPTY,
    Checkpoint,
    ConcurrencyError,
    Ledger,
    LedgerMissing,
    Torn,
    VerifyReport,
    parse_checkpoint,
)

__all__ = [
    "EMPTY",
    "GENESIS_PREV",
    "Checkpoint",
    "ConcurrencyError",
    "CorruptRecord",
    "EventStore",
    "FileSnapshots",
    "Fold",
    "Ledger",
    "LedgerMissing",
    "LedgerPort",
    "Loaded",
    "MemoryLedger",
    "MemorySnapshots",
    "Record",
    "Snapshot",
    "SnapshotStore",
    "Torn",
    "VerifyReport",
    "core_fold",
    "encode_batch",
    "latest_valid",
    "parse_checkpoint",
    "parse_line",
    "record_hash",
    "write_snapshot",
]
