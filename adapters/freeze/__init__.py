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
from adapters.freeze.plots import loss_chart, metrics_chart

__all__ = [
    "TEN",
    "ArchiveExists",
    "FrozenArchive",
    "freeze",
    "loss_chart",
    "metrics_chart",
    "resolve_archive",
    "verify_archive",
    "verify_ledger_archives",
]
