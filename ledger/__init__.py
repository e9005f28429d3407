"""The hash-chained JSONL ledger: append, read, verify, recover, snapshot (see DESIGN.md)."""

from ledger.eventstore import EventStore, Fold, Loaded, core_fold
from ledger.record import (
    GENESIS_PREV,
    CorruptRecord,
    Record,
    encode_batch,
    parse_line,
    record_hash,
)
from ledger.snapshot import Snapshot, latest_valid, write_snapshot
from ledger.store import (
    EMPTY,
    Checkpoint,
    ConcurrencyError,
    Ledger,
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
    "Fold",
    "Ledger",
    "Loaded",
    "Record",
    "Snapshot",
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
