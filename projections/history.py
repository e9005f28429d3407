"""``replay``: the folded state plus the few facts the state forgets.

``State`` keeps only the current window and no genesis hashes, but the archive and
lineage.csv need every window's cycle, the genesis registration and what became of each
proposal. ``replay`` folds the records with ``evo_core.evolve`` and collects those on the way,
once, so several projections can share one pass over the ledger.
"""

from __future__ import annotations

from typing import Iterable

import msgspec

from evo_core import events as ev
from evo_core.evolve import evolve
from evo_core.state import State

from projections.records import LedgerRecord, clocked


class History(msgspec.Struct, frozen=True, kw_only=True):
    state: State
    last_seq: int | None  # the ledger seq folded up to (None: empty ledger)
    genesis: ev.GenerationRegistered | None
    genesis_cycle: int | None
    windows: dict[int, ev.WindowOpened]  # every window ever opened, by number
    fates: dict[str, str]  # candidate -> what became of its proposal, latest news


def replay(records: Iterable[LedgerRecord]) -> History:
    state = State()
    last_seq: int | None = None
    genesis: ev.GenerationRegistered | None = None
    genesis_cycle: int | None = None
    windows: dict[int, ev.WindowOpened] = {}
    fates: dict[str, str] = {}
    pending: str | None = None  # the proposed candidate, until its proposal is settled

    for cycle, record in clocked(records):
        e = record.event
        last_seq = record.seq
        match e:
            case ev.GenerationRegistered():
                genesis, genesis_cycle = e, cycle
            case ev.WindowOpened():
                windows[e.window] = e
            case ev.Proposed():
                pending = e.proposal.candidate
                fates[pending] = "proposed"
            case ev.Approved() if pending:
                fates[pending] = "approved"
            case ev.Rejected() if pending:
                fates[pending], pending = f"rejected: {e.reason}", None
            case ev.ShadowCompleted(outcome="failed"):
                fates[e.generation] = f"shadow failed ({e.reason or f'parity {e.parity:.3f} < {e.threshold:g}'})"
                pending = None
            case ev.Promoted():
                fates[e.generation] = "promoted, in burn-in"
            case ev.BurnInPassed():
                fates[e.generation], pending = "promoted", None
            case ev.BurnInFailed():
                fates[e.generation], pending = f"burn-in failed: {e.reason}", None
            case ev.RolledBack():
                if pending and pending != e.from_generation:
                    fates[pending] = f"aborted by rollback: {e.reason}"
                if not e.automatic and e.from_generation != e.to_generation:
                    fates[e.from_generation] = f"rolled back: {e.reason}"
                pending = None
        state = evolve(state, e)

    return History(
        state=state,
        last_seq=last_seq,
        genesis=genesis,
        genesis_cycle=genesis_cycle,
        windows=windows,
        fates=fates,
    )


def as_history(source: History | Iterable[LedgerRecord]) -> History:
    return source if isinstance(source, History) else replay(source)
