"""projections: read models folded from the ledger's events. Pure: values in, values out.

Every projection takes either the folded ``State`` (what is true now) or the records
themselves (what happened, and when), as any objects with ``seq``, ``at`` and ``event``
(``LedgerRecord``). None of them reads a file, a clock or the ledger package: the shell reads
the ledger, calls these, and writes what they render (lineage.csv, PROMOTION_PROPOSAL.json,
evolution_log.jsonl) or prints it (``evo status``, ``evo log``, ``evo timeline``).
"""

from __future__ import annotations

from projections.asof import state_at
from projections.candidates import status_label
from projections.evolution_log import LogEntry, evolution_log, render_jsonl
from projections.head import (
    HeadChange,
    head_at,
    head_history,
)
from projections.history import History, as_history, replay
from projections.lineage import COLUMNS, LineageRow, lineage_rows, render_csv
from projections.proposal import (
    ProposalDocument,
    ProposalHashes,
    approve_command,
    proposal_document,
    reject_command,
    render_proposal,
)
from projections.records import LedgerRecord, clocked
from projections.status import (
    BurnInProgress,
    CandidateLine,
    ProposalSummary,
    ShadowProgress,
    StatusView,
    WindowProgress,
    next_window_cycle,
    render_text,
    status_view,
)
from projections.summary import describe, format_metrics, short
from projections.timeline import TimelineEntry, timeline

__all__ = [
    "COLUMNS",
    "BurnInProgress",
    "CandidateLine",
    "HeadChange",
    "History",
    "LedgerRecord",
    "LineageRow",
    "LogEntry",
    "ProposalDocument",
    "ProposalHashes",
    "ProposalSummary",
    "ShadowProgress",
    "StatusView",
    "TimelineEntry",
    "WindowProgress",
    "approve_command",
    "as_history",
    "clocked",
    "describe",
    "evolution_log",
    "format_metrics",
    "head_at",
    "head_history",
    "lineage_rows",
    "next_window_cycle",
    "proposal_document",
    "reject_command",
    "render_csv",
    "render_jsonl",
    "render_proposal",
    "render_text",
    "replay",
    "short",
    "state_at",
    "status_label",
    "status_view",
    "timeline",
]
