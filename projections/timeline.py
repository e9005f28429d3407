"""A generation's timeline, for forensics: every record that concerns it, in ledger order.

For a candidate: the window that bred it (and HEAD's baseline there), its spawn, training,
budget breach or failure, gate verdict, the window's ranking, its freeze, the proposal, the
operator's approval or rejection, the shadow, the cutover, burn-in and any rollback to or from
it. For a generation that served as HEAD (the genesis included): its registration, the windows
it taught and the rollbacks. Shadow samples are left out unless ``samples=True``.
"""

from __future__ import annotations

from typing import Iterable

from evo_core import events as ev

from projections.entry import Entry, entry
from projections.records import LedgerRecord, clocked

TimelineEntry = Entry  # the shared shape (``projections.entry``)


def _entry(cycle: int, record: LedgerRecord) -> TimelineEntry:
    return entry(Entry, cycle, record)


def timeline(
    records: Iterable[LedgerRecord], name: str, *, samples: bool = False
) -> list[TimelineEntry]:
    out: list[TimelineEntry] = []
    windows: set[int] = set()  # the window(s) that bred ``name``
    hashes: set[str] = set()  # the proposals naming ``name``
    held: list[tuple[int, LedgerRecord]] = []  # the open window's start, until we know
    held_window: int | None = None

    for cycle, record in clocked(records):
        e = record.event
        mine = False
        match e:
            case ev.Heartbeat():
                continue
            case ev.WindowOpened():
                held, held_window = [(cycle, record)], e.window
                mine = e.head == name
                if mine:
                    held = []
            case ev.BaselineEvaluated():
                mine = e.window in windows or e.generation == name
                if not mine and e.window == held_window and held:
                    held.append((cycle, record))
            case ev.CandidateSpawned() if e.candidate == name:
                windows.add(e.window)
                if e.window == held_window:
                    out.extend(_entry(c, r) for c, r in held)
                held = []
                mine = True
            case (
                ev.TrainingStarted()
                | ev.TrainingFinished()
                | ev.TrainingFailed()
                | ev.BudgetBreached()
                | ev.GateEvaluated()
                | ev.CandidateFrozen()
            ):
                mine = e.candidate == name
            case ev.CandidatesRanked() | ev.NoPromotion():
                mine = e.window in windows
            case ev.Proposed():
                mine = e.proposal.candidate == name
                if mine:
                    hashes.add(e.proposal_hash)
            case ev.Approved() | ev.Rejected():
                mine = e.proposal_hash in hashes
            case ev.ShadowCompared():
                mine = samples and e.generation == name
            case (
                ev.GenerationRegistered()
                | ev.ShadowStarted()
                | ev.ShadowCompleted()
                | ev.BurnInPassed()
                | ev.BurnInFailed()
            ):
                mine = e.generation == name
            case ev.Promoted():
                mine = name in (e.generation, e.previous_head)
            case ev.RolledBack():
                mine = name in (e.from_generation, e.to_generation)
        if mine:
            out.append(_entry(cycle, record))
    return out
