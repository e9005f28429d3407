"""``models/evolution_log.jsonl``: the operator's log, one JSON object per event that matters.

Heartbeats, per-step training chatter and shadow samples are left out (the ledger has them).
Every entry starts with the shape ``evo log --json`` and ``evo timeline --json`` share
(``projections.entry``: ``seq``, ``at``, ``cycle``, ``type``, ``summary``, ``event``), then
``action`` and ``timestamp`` (the record's append time, as ``at``); the rest depends on the
action. The spec's rollback script writes ``{"timestamp", "action": "ROLLBACK", "from", "to",
"reason"}``: those keys are kept.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import msgspec

from evo_core import events as ev

from projections.entry import Entry, entry
from projections.records import LedgerRecord, clocked


class LogEntry(Entry, frozen=True, kw_only=True, omit_defaults=True):
    action: str
    timestamp: str
    window: int | None = None
    generation: str | None = None
    from_: str | None = msgspec.field(default=None, name="from")
    to: str | None = None
    reason: str | None = None
    ranking: tuple[str, ...] | None = None
    improvement: float | None = None
    proposal_hash: str | None = None
    operator: str | None = None
    outcome: str | None = None
    parity: float | None = None
    quality: float | None = None  # the share of the answers scored by the old HEAD that were plausible
    samples: int | None = None
    automatic: bool | None = None
    key_id: str | None = None
    autonomous: bool | None = None
    action_refused: str | None = None
    enabled: bool | None = None
    answers: int | None = None
    until_cycle: int | None = None
    actions: tuple[str, ...] | None = None
    signal: str | None = None


def _fields(e: ev.Event) -> tuple[str, dict[str, object]] | None:
    """(action, extra fields) of an event worth logging, else None."""
    match e:
        case ev.GenerationRegistered():
            return "GENESIS", {"generation": e.generation}
        case ev.WindowOpened():
            return "WINDOW_OPENED", {"window": e.window, "from_": e.head}
        case ev.WindowSkipped():
            return "WINDOW_SKIPPED", {"reason": e.reason}
        case ev.TrainingFailed():
            return "CANDIDATE_FAILED", {"generation": e.candidate, "reason": e.reason}
        case ev.BudgetBreached():
            return "CANDIDATE_FAILED", {
                "generation": e.candidate,
                "reason": f"budget: {e.resource} {e.used:g} > {e.limit:g}",
            }
        case ev.CandidatesRanked():
            return "RANKED", {"window": e.window, "ranking": e.ranking}
        case ev.CandidateFrozen():
            return "ARCHIVED", {"generation": e.candidate, "outcome": e.status}
        case ev.Proposed():
            p = e.proposal
            return "PROPOSE", {
                "window": p.window,
                "from_": p.current_head,
                "to": p.candidate,
                "reason": p.reason,
                "improvement": p.improvement,
                "proposal_hash": e.proposal_hash,
            }
        case ev.NoPromotion():
            return "NO_PROMOTION", {"window": e.window, "reason": e.reason}
        case ev.Approved():
            return "APPROVE", {
                "proposal_hash": e.proposal_hash,
                "operator": e.operator,
                "key_id": e.key_id or None,
                "autonomous": e.autonomous,
            }
        case ev.ApprovalRefused():
            return "REFUSED", {
                "action_refused": e.action,
                "proposal_hash": e.proposal_hash or None,
                "operator": e.operator,
                "key_id": e.key_id or None,
                "reason": e.reason,
            }
        case ev.AutonomyChanged():
            return "AUTONOMY", {"enabled": e.enabled, "operator": e.operator, "key_id": e.key_id}
        case ev.Rejected():
            return "REJECT", {
                "proposal_hash": e.proposal_hash,
                "operator": e.operator,
                "reason": e.reason,
            }
        case ev.ShadowStarted():
            return "SHADOW_STARTED", {"generation": e.generation}
        case ev.ShadowCompleted():
            return "SHADOW_COMPLETED", {
                "generation": e.generation,
                "outcome": e.outcome,
                "parity": e.parity,
                "quality": e.quality,
                "samples": e.samples,
            }
        case ev.Promoted():
            return "PROMOTE", {
                "from_": e.previous_head,
                "to": e.generation,
                "proposal_hash": e.proposal_hash,
            }
        case ev.BurnInPassed():
            return "GEN_HEAD_ADVANCED", {"generation": e.generation, "outcome": "passed", "quality": e.quality}
        case ev.BurnInExtended():
            return "BURN_IN_EXTENDED", {"generation": e.generation, "answers": e.answers, "until_cycle": e.until_cycle}
        case ev.BurnInFailed():
            return "BURN_IN_FAILED", {"generation": e.generation, "reason": e.reason, "quality": e.quality}
        case ev.WorkInterrupted():
            return "INTERRUPTED", {"actions": tuple(e.actions), "signal": e.signal}
        case ev.RolledBack():
            return "ROLLBACK", {
                "from_": e.from_generation,
                "to": e.to_generation,
                "reason": e.reason,
                "operator": e.operator or None,
                "automatic": e.automatic,
            }
    return None


def evolution_log(records: Iterable[LedgerRecord], flagged: Mapping[int, str] | None = None) -> list[LogEntry]:
    """One entry per notable record; a record the verified fold refused (``flagged``: seq ->
    reason) is a ``REFUSED`` entry saying why, never what it claims."""
    out: list[LogEntry] = []
    for cycle, record in clocked(records):
        if flagged and record.seq in flagged:
            name = ev.event_name(record.event)
            refused = entry(LogEntry, cycle, record, action="REFUSED", timestamp=record.at, reason=flagged[record.seq])
            out.append(msgspec.structs.replace(refused, summary=f"{name} not applied: {flagged[record.seq]}"))
            continue
        found = _fields(record.event)
        if found is None:
            continue
        action, extra = found
        out.append(entry(LogEntry, cycle, record, action=action, timestamp=record.at, **extra))
    return out


_encoder = msgspec.json.Encoder()


def render_jsonl(entries: Sequence[LogEntry]) -> str:
    """One compact JSON object per line, each line ending in ``\\n``."""
    return "".join(_encoder.encode(entry).decode() + "\n" for entry in entries)
