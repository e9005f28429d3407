"""Full verification of a ledger file: the chain, the head hint, an auditor's checkpoint.

Streams the file once, checking every record exactly as an auditor would (hash over the body's
bytes, ``seq`` = line index, ``prev`` = previous hash) and stops at the first record that breaks
the chain: everything after it is unverifiable. Then checks that the ledger still holds the
record ``ledger.head`` names, and the auditor's checkpoint if one was given, with the same hash
(a missing record is truncation or rollback; a different hash is rewritten history). A torn
tail or an incomplete final batch is reported in ``torn``: a crash artefact that recovery moves
aside, not a break in the chain.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec

from ledger.record import GENESIS_PREV, CorruptRecord, check_line
from ledger.tail import EMPTY, Checkpoint

_READ_BUFFER = 1 << 20


class VerifyReport(msgspec.Struct, frozen=True):
    """``ok`` unless the chain breaks or records named by the head or a checkpoint are gone."""

    ok: bool
    count: int
    last: Checkpoint
    first_bad_seq: int | None = None
    problems: tuple[str, ...] = ()
    torn: str | None = None
    notes: tuple[str, ...] = ()


def verify_file(path: Path, head: Checkpoint | None, checkpoint: Checkpoint | None = None,
                *, head_error: str | None = None) -> VerifyReport:
    """``verify_lines`` over the file at ``path`` (a missing file is an empty ledger)."""
    try:
        f = open(path, "rb", buffering=_READ_BUFFER)
    except FileNotFoundError:
        return verify_lines((), head, checkpoint, head_error=head_error)
    with f:
        return verify_lines(f, head, checkpoint, head_error=head_error)


def verify_lines(lines: Iterable[bytes], head: Checkpoint | None, checkpoint: Checkpoint | None = None,
                 *, head_error: str | None = None) -> VerifyReport:
    """Verify a ledger given as its lines (each with its ``\\n``; a last one without is torn)."""
    problems: list[str] = []
    notes: list[str] = []
    first_bad: int | None = None
    torn: str | None = None
    if head_error is not None:
        problems.append(head_error)
    wanted = {cp.seq: (cp, label) for cp, label in
              ((head, "ledger.head"), (checkpoint, "checkpoint")) if cp is not None}
    seen: dict[int, str] = {}
    seq, prev, offset = 0, GENESIS_PREV, 0
    committed = EMPTY
    batch_start_seq: int | None = None
    for line in lines:
        if not line.endswith(b"\n"):
            torn = (f"torn tail: {len(line)} bytes without a final newline after "
                    f"offset {offset} (moved aside by the next append)")
            break
        try:
            body, digest = check_line(line, seq, prev)
        except CorruptRecord as exc:
            problems.append(str(exc))
            first_bad = seq
            break
        if seq in wanted:
            seen[seq] = digest
        offset += len(line)
        prev = digest
        if body.more:
            if batch_start_seq is None:
                batch_start_seq = seq
        else:
            batch_start_seq = None
            committed = Checkpoint(seq, digest)
        seq += 1
    if first_bad is None and batch_start_seq is not None:
        msg = (f"incomplete batch: records {batch_start_seq}..{seq - 1} lack their batch's "
               "last record (moved aside by the next append)")
        torn = msg if torn is None else f"{msg}; {torn}"
    for cp_seq, (cp, label) in sorted(wanted.items()):
        if cp_seq in seen:
            if seen[cp_seq] != cp.hash:
                problems.append(f"seq {cp_seq}: {label} names hash {cp.hash}, "
                                f"the ledger has {seen[cp_seq]} (history rewritten)")
                first_bad = cp_seq if first_bad is None else min(first_bad, cp_seq)
        elif first_bad is None:
            problems.append(f"seq {cp_seq}: {label} names it but the ledger ends at seq "
                            f"{committed.seq} (truncated or rolled back)")
            first_bad = committed.seq + 1
    if head is not None and first_bad is None and head.seq < committed.seq:
        notes.append(f"ledger.head trails the ledger (seq {head.seq} < {committed.seq})")
    return VerifyReport(
        ok=not problems,
        count=committed.seq + 1,
        last=committed,
        first_bad_seq=first_bad,
        problems=tuple(problems),
        torn=torn,
        notes=tuple(notes),
    )
