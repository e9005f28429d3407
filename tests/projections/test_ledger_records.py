"""The ledger's own Record satisfies the LedgerRecord protocol (structurally: no import needed
by projections)."""

from __future__ import annotations

import pytest

from projections import evolution_log, head_history
from tests.projections.conftest import Sim


def test_projections_read_ledger_records(story: Sim) -> None:
    record_mod = pytest.importorskip("ledger.record")
    fields = set(record_mod.Record.__struct_fields__)
    assert {"seq", "at", "event"} <= fields
    others = fields - {"seq", "at", "event"}
    extra = {name: 0 if name in ("end", "more") else "0" * 64 for name in others}
    records = [
        record_mod.Record(seq=r.seq, at=r.at, event=r.event, **extra) for r in story.records
    ]
    assert evolution_log(records) == evolution_log(story.records)
    assert head_history(records) == head_history(story.records)
