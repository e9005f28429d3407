"""GEN_ARCHIVE: every immutable generation, passed or failed (spec: "all generations (pass AND
fail)"), labelled as the spec lists them: ``promoted``, ``promoted, HEAD``,
``FAIL - <reason>``, ``PASS but not selected``, or what became of a proposal that was not
promoted (rejected, shadow failed, aborted, rolled back)."""

from __future__ import annotations

from typing import Iterable

import msgspec

from projections.history import History, as_history
from projections.records import LedgerRecord


class ArchiveEntry(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str  # "genesis" or "candidate"
    gen: int
    branch: str  # "" for the genesis
    window: int | None
    parent: str | None
    verdict: str  # STATUS.txt: PASS / FAIL - <reason>; "GENESIS" for the genesis
    label: str  # the spec's archive listing note
    promoted: bool  # was ever HEAD (by promotion or as the genesis)
    head: bool
    score: float | None
    archive: str
    archive_hash: str
    model_hash: str
    manifest_hash: str = ""


def _label(base: str, fate: str, head: bool) -> str:
    parts = [base]
    if base == "promoted" and fate.startswith("promoted"):
        parts = [fate]
    elif fate:
        parts.append(fate)
    if head:
        parts.append("HEAD")
    return ", ".join(parts)


def gen_archive(source: History | Iterable[LedgerRecord]) -> list[ArchiveEntry]:
    """The genesis, then every frozen candidate, ordered by gen then branch."""
    h = as_history(source)
    s = h.state
    out: list[ArchiveEntry] = []
    if h.genesis is not None:
        g = h.genesis
        out.append(
            ArchiveEntry(
                name=g.generation,
                kind="genesis",
                gen=g.gen,
                branch="",
                window=None,
                parent=None,
                verdict="GENESIS",
                label=_label("genesis", h.fates.get(g.generation, ""), s.head == g.generation),
                promoted=True,
                head=s.head == g.generation,
                score=None,
                archive=g.archive or g.source,
                archive_hash=g.archive_hash,
                model_hash=g.model_hash,
            )
        )
    frozen = [c for c in s.candidates.values() if c.frozen]
    frozen.sort(key=lambda c: (c.gen, c.window, len(c.branch), c.branch))
    for c in frozen:
        promoted = c.id in s.promoted
        fate = h.fates.get(c.id, "")
        if promoted:
            base = "promoted"
        elif not c.verdict.startswith("PASS"):
            base = c.verdict
        elif fate:
            base = "PASS"
        else:
            base = "PASS but not selected"
        out.append(
            ArchiveEntry(
                name=c.id,
                kind="candidate",
                gen=c.gen,
                branch=c.branch,
                window=c.window,
                parent=c.parent,
                verdict=c.verdict,
                label=_label(base, fate, s.head == c.id),
                promoted=promoted,
                head=s.head == c.id,
                score=c.score,
                archive=c.archive,
                archive_hash=c.archive_hash,
                model_hash=c.model_hash,
                manifest_hash=c.manifest_hash,
            )
        )
    return out
