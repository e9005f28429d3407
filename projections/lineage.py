"""``models/lineage.csv``: one row per generation and candidate, ordered by gen then branch.

The spec's rollback script reads it: ``promoted`` is ``true`` for every generation that was
ever HEAD (the genesis or a promotion), and the "previous" target is the last promoted row with
a lower ``gen_id``. ``head`` marks the current GEN_HEAD. ``status`` is STATUS.txt (``PASS`` /
``FAIL - <reason>``), or ``SPAWNED`` / ``TRAINING`` / ``TRAINED`` while a candidate is in flight.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

import msgspec

from projections.candidates import status_label
from projections.history import History, as_history
from projections.records import LedgerRecord

COLUMNS: tuple[str, ...] = (
    "gen_id",
    "branch",
    "gen_name",
    "parent",
    "stabilizer",
    "window",
    "cycle",
    "seed",
    "strategy",
    "status",
    "score",
    "promoted",
    "head",
    "archive",
    "archive_hash",
)


class LineageRow(msgspec.Struct, frozen=True, kw_only=True):
    gen_id: int
    branch: str
    gen_name: str
    parent: str | None
    stabilizer: str | None
    window: int | None
    cycle: int | None  # the window's cycle (the genesis: the cycle it was registered at)
    seed: int | None
    strategy: str
    status: str
    score: float | None
    promoted: bool
    head: bool
    archive: str
    archive_hash: str


def lineage_rows(source: History | Iterable[LedgerRecord]) -> list[LineageRow]:
    h = as_history(source)
    s = h.state
    rows: list[LineageRow] = []
    if h.genesis is not None:
        g = h.genesis
        rows.append(
            LineageRow(
                gen_id=g.gen,
                branch="",
                gen_name=g.generation,
                parent=None,
                stabilizer=None,
                window=None,
                cycle=h.genesis_cycle,
                seed=None,
                strategy="",
                status="GENESIS",
                score=None,
                promoted=True,
                head=s.head == g.generation,
                archive=g.archive or g.source,
                archive_hash=g.archive_hash,
            )
        )
    cands = sorted(
        s.candidates.values(), key=lambda c: (c.gen, c.window, len(c.branch), c.branch)
    )
    for c in cands:
        opened = h.windows.get(c.window)
        rows.append(
            LineageRow(
                gen_id=c.gen,
                branch=c.branch,
                gen_name=c.id,
                parent=c.parent,
                stabilizer=c.stabilizer,
                window=c.window,
                cycle=opened.cycle if opened is not None else None,
                seed=c.seed,
                strategy=c.strategy,
                status=status_label(c),
                score=c.score,
                promoted=c.id in s.promoted,
                head=s.head == c.id,
                archive=c.archive,
                archive_hash=c.archive_hash,
            )
        )
    return rows


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def render_csv(rows: Sequence[LineageRow]) -> str:
    """CSV text with a header row and ``\\n`` line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(getattr(row, name)) for name in COLUMNS])
    return buffer.getvalue()
