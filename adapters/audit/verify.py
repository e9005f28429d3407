"""``evo verify``: everything an auditor can check from the workspace, read-only.

1. The ledger contract: every record's blake3, seq and prev link; the head file (truncation);
   an auditor's checkpoint (the ledger still extends it); a torn tail.
2. The history is one the machine could have produced (one fold checks this and the snapshots): every event is accepted by the phase
   it was appended in (``evo_core.transitions``), so a well-chained record written out of band
   that the scheduler would never emit is named with its seq.
3. Derived things agree with the ledger: snapshots with the fold at their seq; the GEN_HEAD
   links (a disagreement is a note: the next command reconciles it from the ledger).
4. With ``deep``: every archive the ledger names (CandidateFrozen, the genesis
   GenerationRegistered) is re-hashed against its event and its hashes.csv
   (``adapters.freeze.verify_ledger_archives``).
5. Every signed record (Approved, Rejected, AutonomyChanged) re-verified against today's
   ``[approval] trusted_keys`` (``adapters.operator.signing.event_problem``): a bad one is a problem named
   with its seq, except an approval withdrawn by ``ApprovalRefused`` before it was acted on (a note).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from adapters.runtime import links
from adapters.runtime.workspace import Workspace
from evo_core.errors import CorruptHistory
from evo_core.evolve import evolve
from evo_core import events as ev
from evo_core.events import event_name
from evo_core.state import STATE_VERSION, Phase, State
from evo_core.transitions import accepts
from ledger.eventstore import core_fold
from ledger.record import CorruptRecord
from ledger.snapshot import Snapshot, read_snapshot, snapshot_paths
from ledger.store import Checkpoint, Ledger


class AuditReport(msgspec.Struct, kw_only=True):
    ok: bool
    records: int
    seq: int
    hash: str
    first_bad_seq: int | None = None
    problems: list[str] = []
    notes: list[str] = []

    def summary(self) -> str:
        if self.ok:
            return f"ok: {self.records} records verified, head {self.seq}:{self.hash}"
        where = f" at seq {self.first_bad_seq}" if self.first_bad_seq is not None else ""
        return f"FAILED{where}: {self.problems[0] if self.problems else 'unknown problem'}"


def audit(home: Path, checkpoint: Checkpoint | None = None, *, deep: bool = False) -> AuditReport:
    ws = Workspace(home)
    if not ws.ledger_path.exists():
        return AuditReport(ok=False, records=0, seq=-1, hash="", problems=[f"no ledger at {ws.ledger_path}"])
    ledger = Ledger(home)
    try:
        report = ledger.verify(checkpoint)
        out = AuditReport(
            ok=report.ok,
            records=report.count,
            seq=report.last.seq,
            hash=report.last.hash,
            first_bad_seq=report.first_bad_seq,
            problems=list(report.problems),
            notes=list(report.notes) + ([report.torn] if report.torn else []),
        )
        if not report.ok:
            return out
        signed: list[tuple[int, ev.Event, State]] = []
        state = _replay(home, ledger, out, signed)
        if out.ok:
            _check_signatures(ws, ledger, signed, out)
        if out.ok:
            _check_links(ws, state, out)
        if out.ok and deep:
            _check_archives(ws, ledger, out)
        return out
    finally:
        ledger.close()


def _fail(out: AuditReport, seq: int, problem: str) -> None:
    out.ok = False
    out.first_bad_seq = seq if out.first_bad_seq is None else min(seq, out.first_bad_seq)
    out.problems.append(problem)


def _snapshots(home: Path, out: AuditReport) -> dict[int, tuple[Path, Snapshot]]:
    wanted: dict[int, tuple[Path, Snapshot]] = {}
    for path in snapshot_paths(home):
        snap = read_snapshot(path)
        if snap is None or STATE_VERSION not in snap.version:
            out.notes.append(f"snapshot {path.name} is unreadable or of another version (ignored)")
            continue
        wanted[snap.seq] = (path, snap)
    return wanted


_SIGNED = (ev.Approved, ev.Rejected, ev.AutonomyChanged, ev.ApprovalRefused)


def _replay(
    home: Path, ledger: Ledger, out: AuditReport, signed: list[tuple[int, ev.Event, State]] | None = None
) -> State:
    """One fold of the whole ledger: every event is one its phase accepts and that applies to
    the history before it, and every snapshot equals the fold at its seq. ``signed`` collects
    the signed records (and refusals) with the state each was appended to."""
    decode = core_fold().decode
    snapshots = _snapshots(home, out)
    state = State()
    try:
        for rec in ledger.records():
            if not accepts(state.phase, rec.event):
                _fail(out, rec.seq, f"seq {rec.seq}: {event_name(rec.event)} is not allowed in phase {state.phase.value!r}")
                return state
            if signed is not None and isinstance(rec.event, _SIGNED):
                signed.append((rec.seq, rec.event, state))
            try:
                state = evolve(state, rec.event)
            except CorruptHistory as exc:
                _fail(out, rec.seq, f"seq {rec.seq}: {exc}")
                return state
            if rec.seq in snapshots:
                path, snap = snapshots.pop(rec.seq)
                if snap.hash != rec.hash or decode(bytes(snap.state)) != state:
                    _fail(out, rec.seq, f"snapshot {path.name} does not match the ledger at seq {rec.seq}")
    except CorruptRecord as exc:  # appended between verify and this pass, and bad
        _fail(out, exc.seq, str(exc))
    for path, _ in snapshots.values():
        out.notes.append(f"snapshot {path.name} is beyond the ledger's end (ignored)")
    return state


def _check_signatures(ws: Workspace, ledger: Ledger, signed: list[tuple[int, ev.Event, State]], out: AuditReport) -> None:
    if not any(not isinstance(e, ev.ApprovalRefused) for _, e, _ in signed):
        return
    from adapters.operator import signing
    from evo_core.errors import EvoError

    try:
        config = ws.load_config()
    except (EvoError, OSError) as exc:
        out.notes.append(f"signatures not checked: {exc}")
        return
    lid = signing.ledger_id(ledger)
    standing: dict[str, tuple[int, str]] = {}  # proposal hash -> a bad approval not yet withdrawn
    for seq, event, before in signed:
        if isinstance(event, ev.ApprovalRefused):
            withdrawn = event.action == "approve" and before.phase is Phase.APPROVED
            if withdrawn and event.proposal_hash in standing:
                bad_seq, why = standing.pop(event.proposal_hash)
                out.notes.append(f"seq {bad_seq}: Approved: {why} (withdrawn at seq {seq})")
            continue
        problem = signing.event_problem(config, lid, event, before)
        if problem is None:
            continue
        if isinstance(event, ev.Approved):  # keyed by the proposal it approved, whatever it claims
            standing[before.proposal.hash if before.proposal else event.proposal_hash] = (seq, problem)
        else:
            _fail(out, seq, f"seq {seq}: {event_name(event)}: {problem}")
    for bad_seq, problem in standing.values():
        _fail(out, bad_seq, f"seq {bad_seq}: Approved: {problem}")


def _check_archives(ws: Workspace, ledger: Ledger, out: AuditReport) -> None:
    from adapters.freeze import verify_ledger_archives

    for seq, problem in verify_ledger_archives(ws, ((rec.seq, rec.event) for rec in ledger.records())):
        _fail(out, seq, problem)


def _check_links(ws: Workspace, state: State, out: AuditReport) -> None:
    if state.head is None:
        return
    heads = [p for p in ws.models.glob("*-GHEAD")] if ws.models.exists() else []
    for head_link in heads:
        agent = head_link.name[: -len("-GHEAD")]
        want = {
            ws.head_link(agent): links.link_target(state.head),
            ws.parent_link(agent): links.link_target(state.parent) if state.parent else None,
        }
        for path, target in want.items():
            got = links.read_link(path)
            if got != target:
                out.notes.append(
                    f"{path.name} points at {got or '(nothing)'}, the ledger says {target or '(nothing)'}; "
                    "the next evo command reconciles it"
                )
