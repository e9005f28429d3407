"""``evo verify``: everything an auditor can check from the workspace, read-only.

1. The ledger contract: every record's blake3, seq and prev link; the head file (truncation);
   an auditor's checkpoint (the ledger still extends it); a torn tail.
2. The verified fold (``adapters.runtime.history``, the one the runner, the router and the agent
   use): every record the state machine could not have produced, or whose authority does not
   verify with the keys the ledger trusted then, is named with its seq and the reason.
3. The operator's checkpoints: every checkpoint an operator signature covers names a record of
   this ledger with that hash, and so does every checkpoint in the operator's witness outside
   the workspace (``adapters.operator.witness``; ``witness_root`` overrides its folder): a
   truncated or consistently rewritten ledger is detected. So are keys pinned at creation that
   differ from the ones the operator pinned.
4. Derived things agree with the ledger: the GEN_HEAD links (a disagreement is a note: the
   next command repairs it). Snapshot files are a cache nothing trusts (a note if one differs).
5. With ``deep``: every archive the ledger names (CandidateFrozen, the genesis
   GenerationRegistered) is re-hashed against its event and its hashes.csv
   (``adapters.freeze.verify_ledger_archives``).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from adapters.runtime import links
from adapters.runtime.history import verified_fold
from adapters.runtime.workspace import Workspace
from evo_core.events import event_name
from evo_core.state import State
from ledger.record import CorruptRecord
from ledger.snapshot import read_snapshot, snapshot_paths
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


def audit(
    home: Path, checkpoint: Checkpoint | None = None, *, deep: bool = False, witness_root: Path | None = None
) -> AuditReport:
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
        state, hashes, signed = _replay(ledger, out)
        for flag in state.flagged:
            _fail(out, flag.seq, f"seq {flag.seq}: {flag.type}: {flag.reason}")
        _check_signed_checkpoints(hashes, signed, out)
        _check_witness(home, state, hashes, out, witness_root)
        _check_snapshots(home, hashes, out)
        _check_links(ws, state, out)
        if deep:
            _check_archives(ws, ledger, out)
        return out
    finally:
        ledger.close()


def _fail(out: AuditReport, seq: int, problem: str) -> None:
    out.ok = False
    out.first_bad_seq = seq if out.first_bad_seq is None else min(seq, out.first_bad_seq)
    out.problems.append(problem)


def _replay(ledger: Ledger, out: AuditReport) -> tuple[State, list[str], list[tuple[int, str, int, str]]]:
    """The verified fold of the whole ledger, every record's hash, and the checkpoints the
    applied operator signatures cover: (seq, type, checkpoint seq, checkpoint hash)."""
    step = verified_fold(ledger).evolve
    state = State()
    hashes: list[str] = []
    signed: list[tuple[int, str, int, str]] = []
    try:
        for rec in ledger.records():
            flagged = len(state.flagged)
            state = step(state, rec.event)
            hashes.append(rec.hash)
            seq = getattr(rec.event, "checkpoint_seq", -1)
            if seq >= 0 and len(state.flagged) == flagged:
                signed.append((rec.seq, event_name(rec.event), seq, rec.event.checkpoint_hash))  # type: ignore[attr-defined]
    except CorruptRecord as exc:  # appended between verify and this pass, and bad
        _fail(out, exc.seq, str(exc))
    return state, hashes, signed


def _check_signed_checkpoints(hashes: list[str], signed: list[tuple[int, str, int, str]], out: AuditReport) -> None:
    for seq, name, cp_seq, cp_hash in signed:
        if cp_seq >= len(hashes) or hashes[cp_seq] != cp_hash:
            _fail(out, seq, f"seq {seq}: {name}: the operator signed checkpoint {cp_seq}:{cp_hash[:16]}, "
                  "which this ledger does not hold: the history before it was rewritten")


def _check_witness(home: Path, state: State, hashes: list[str], out: AuditReport, root: Path | None) -> None:
    from adapters.operator import witness

    path, kept = witness.checkpoints(home, root)
    if not kept:
        out.notes.append(f"no operator checkpoints at {path} (the operator's witness; see `evo verify --help`)")
        return
    pinned = tuple(sorted(state.pinned_keys))
    for w in kept:
        if w.ledger_id != state.ledger_id:
            _fail(out, 0, f"the operator's checkpoint {w.seq}:{w.hash[:16]} ({w.action}, {w.at}) belongs to ledger "
                  f"{w.ledger_id[:16]}, this ledger is {state.ledger_id[:16]}: it was rewritten from the start")
        elif w.seq >= len(hashes):
            _fail(out, len(hashes), f"the operator's checkpoint {w.seq}:{w.hash[:16]} ({w.action}, {w.at}) is past "
                  f"the ledger's end (seq {len(hashes) - 1}): the ledger was truncated")
        elif hashes[w.seq] != w.hash:
            _fail(out, w.seq, f"seq {w.seq}: the operator's checkpoint ({w.action}, {w.at}) has hash {w.hash[:16]}, "
                  f"the ledger {hashes[w.seq][:16]}: the history was rewritten")
        if w.action == "init" and w.keys and tuple(sorted(w.keys)) != pinned:
            _fail(out, 0, f"the keys pinned in this ledger ({', '.join(pinned) or 'none'}) are not the ones the "
                  f"operator pinned ({', '.join(w.keys)})")
    out.notes.append(f"{len(kept)} operator checkpoints checked ({path})")


def _check_snapshots(home: Path, hashes: list[str], out: AuditReport) -> None:
    for path in snapshot_paths(home):
        snap = read_snapshot(path)
        if snap is None or snap.seq >= len(hashes) or hashes[snap.seq] != snap.hash:
            out.notes.append(f"snapshot {path.name} does not match the ledger (a cache nothing reads: ignored)")


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
                    "the next evo command repairs it (nothing follows the link)"
                )
