"""The projection files in ``<home>/models/``, rebuilt from the ledger and written atomically.

    lineage.csv              every generation and candidate (the spec's lineage ledger)
    evolution_log.jsonl      what operators care about: windows, proposals, promotions, rollbacks
    PROMOTION_PROPOSAL.json  the pending proposal (removed when none is pending)

They are derived data, rebuilt after every batch that holds anything but heartbeats (once per
command for a window's training or evaluation: ``App.deferred``); a deleted one is written
again by the next `evo status`. The ledger is read once, and each run of
heartbeats is compacted to its last one (a heartbeat changes nothing but the cycle), so the
projections fold a list as long as the non-heartbeat history.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from adapters.runtime.workspace import Workspace, write_atomic
from evo_core.events import Heartbeat
from evo_core.state import State
from ledger.eventstore import EventStore
from ledger.record import Record
from projections.evolution_log import evolution_log, render_jsonl
from projections.history import replay
from projections.lineage import lineage_rows, render_csv
from projections.proposal import proposal_document, render_proposal

PROPOSAL_FILE = "PROMOTION_PROPOSAL.json"
ALWAYS = ("lineage.csv", "evolution_log.jsonl")  # the proposal file exists only while one is pending


def missing(ws: Workspace) -> bool:
    return any(not (ws.models / name).is_file() for name in ALWAYS)


def compact(records: Iterable[Record]) -> Iterator[Record]:
    """Every non-heartbeat record, each preceded by the latest heartbeat before it, and the
    final heartbeat: folds to the same state and the same cycles as the whole ledger."""
    pending: Record | None = None
    for rec in records:
        if isinstance(rec.event, Heartbeat):
            pending = rec
            continue
        if pending is not None:
            yield pending
            pending = None
        yield rec
    if pending is not None:
        yield pending


def materialize(ws: Workspace, store: EventStore[State], state: State) -> None:
    ws.models.mkdir(parents=True, exist_ok=True)
    records = list(compact(store.ledger.records()))
    flagged = {f.seq: f"{f.reason}" for f in state.flagged}
    applied = [r for r in records if r.seq not in flagged]  # what the verified fold applied
    write_atomic(ws.models / "lineage.csv", render_csv(lineage_rows(replay(applied))))
    write_atomic(ws.models / "evolution_log.jsonl", render_jsonl(evolution_log(records, flagged)))
    document = proposal_document(state)
    target = ws.models / PROPOSAL_FILE
    if document is None:
        target.unlink(missing_ok=True)
    else:
        write_atomic(target, render_proposal(document))
