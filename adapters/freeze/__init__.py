"""Step 6, FREEZE: every candidate archived once, whole and read-only (see ``archive``)."""

from adapters.freeze.archive import (
    TEN,
    ArchiveExists,
    FrozenArchive,
    freeze,
    resolve_archive,
    verify_archive,
    verify_ledger_archives,
)
from adapters.freeze.png import encode_png, metrics_chart

__all__ = [
    "TEN",
    "ArchiveExists",
    "FrozenArchive",
    "encode_png",
    "freeze",
    "metrics_chart",
    "resolve_archive",
    "verify_archive",
    "verify_ledger_archives",
]
