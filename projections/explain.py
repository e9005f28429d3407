"""``evo explain NAME``: why a candidate ended as it did, or what a genesis is, in one value.

One pass over the records collects every fact about ``name``: the window that bred it and
HEAD's baseline there, its spawn (branch, strategy, seed, parent G(N), stabilizer G(N-1),
budget), training (attempts, stats, a crash or the first budget breach), the gates, the score
against HEAD's, its rank, the frozen archive and its hashes, and the rollout that followed
(proposed, approved or rejected, shadow, promotion, burn-in, rollbacks). ``why`` is the one
line an auditor asks for first; a failed gate reads as ``projections.explain_gates`` words it
(a bounded gate: the paired difference, its items and the bound against the tolerance). Event types this module does not know are skipped: an
explanation only needs the ones it names.
"""

from __future__ import annotations

from typing import Iterable

import msgspec

from evo_core import events as ev
from evo_core.values import BudgetLimits, BudgetUsed

from projections.explain_gates import UNITS, breach_text, gate_text
from projections.explanation import BudgetBreach, Explanation, FrozenArchive, Step
from projections.records import LedgerRecord, clocked
from projections.summary import describe


class _Facts(msgspec.Struct, kw_only=True):
    """What the pass has collected so far (mutable; frozen into an Explanation at the end)."""

    spawn: ev.CandidateSpawned | None = None
    genesis: ev.GenerationRegistered | None = None
    seq: int = 0
    cycle: int = 0
    opened: ev.WindowOpened | None = None
    attempts: int = 0
    finished: ev.TrainingFinished | None = None
    failed: ev.TrainingFailed | None = None
    breached: ev.BudgetBreached | None = None
    evaluated: ev.GateEvaluated | None = None
    baseline: ev.BaselineEvaluated | None = None
    ranking: tuple[str, ...] = ()
    frozen: FrozenArchive | None = None
    outcome: str = ""
    hashes: list[str] = []
    flags: dict[str, bool] = {}
    news: str = ""  # the latest word on its rollout, for ``why``
    pending: bool = False  # proposed, not yet promoted, rejected or failed
    taught: list[int] = []
    rollout: list[Step] = []


def generation_names(records: Iterable[LedgerRecord]) -> list[str]:
    """Every genesis and candidate the ledger names, in ledger order."""
    out: list[str] = []
    for record in records:
        e = record.event
        match e:
            case ev.GenerationRegistered():
                out.append(e.generation)
            case ev.CandidateSpawned():
                out.append(e.candidate)
            case _:
                pass
    return out


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _step(f: _Facts, cycle: int, record: LedgerRecord, flag: str | None, news: str | None) -> None:
    e = record.event
    f.rollout.append(Step(seq=record.seq, cycle=cycle, type=ev.event_name(e), summary=describe(e)))
    if flag:
        f.flags[flag] = True
    if news is not None:
        f.news = news


def explain(records: Iterable[LedgerRecord], name: str) -> Explanation | None:
    f = _Facts()
    head: str | None = None
    opened: dict[int, ev.WindowOpened] = {}
    baselines: dict[int, ev.BaselineEvaluated] = {}
    window: int | None = None

    for cycle, record in clocked(records):
        e = record.event
        match e:
            case ev.GenerationRegistered():
                head = e.generation
                if e.generation == name:
                    f.genesis, f.seq, f.cycle = e, record.seq, cycle
            case ev.WindowOpened():
                opened[e.window] = e
                if e.head == name:
                    f.taught.append(e.window)
            case ev.BaselineEvaluated():
                baselines[e.window] = e
            case ev.CandidateSpawned() if e.candidate == name:
                f.spawn, f.seq, f.cycle, window = e, record.seq, cycle, e.window
                f.opened = opened.get(e.window)
            case ev.TrainingStarted() if e.candidate == name:
                f.attempts = max(f.attempts + 1, e.attempt)
            case ev.TrainingFinished() if e.candidate == name:
                f.finished = e
            case ev.TrainingFailed() if e.candidate == name:
                f.failed = e
            case ev.BudgetBreached() if e.candidate == name:
                f.breached = e
            case ev.GateEvaluated() if e.candidate == name:
                f.evaluated = e
            case ev.CandidatesRanked() if e.window == window:
                f.ranking = e.ranking
            case ev.CandidateFrozen() if e.candidate == name:
                f.frozen = FrozenArchive(
                    seq=record.seq,
                    status=e.status,
                    archive=e.archive,
                    archive_hash=e.archive_hash,
                    model_hash=e.model_hash,
                    manifest_hash=e.manifest_hash,
                )
            case ev.Proposed() if e.proposal.window == window and window is not None:
                f.outcome = f"proposed {e.proposal.candidate}"
                if e.proposal.candidate == name:
                    f.hashes.append(e.proposal_hash)
                    f.pending = True
                    _step(f, cycle, record, "proposed", "proposed, awaiting approval")
            case ev.NoPromotion() if e.window == window:
                f.outcome = f"no promotion: {e.reason}"
            case ev.Approved() if e.proposal_hash in f.hashes:
                who = "the scheduler (autonomy)" if e.autonomous else e.operator
                _step(f, cycle, record, "approved", f"proposed, approved by {who}, awaiting shadow")
            case ev.ApprovalRefused() if e.proposal_hash in f.hashes:
                if e.action == "approve":  # an approval refused after it was appended is withdrawn
                    f.flags.pop("approved", None)
                refused = f"proposed, {e.action} by {e.operator} refused: {e.reason}"
                _step(f, cycle, record, None, refused if f.pending else None)
            case ev.Rejected() if e.proposal_hash in f.hashes:
                f.pending = False
                _step(f, cycle, record, "rejected", f"proposed, rejected by {e.operator}: {e.reason}")
            case ev.ShadowStarted() if e.generation == name:
                _step(f, cycle, record, "shadowed", "proposed and approved, in shadow")
            case ev.ShadowCompleted() if e.generation == name:
                news = None
                if e.outcome == "failed":
                    f.pending = False
                    news = f"proposed and approved, shadow failed ({e.reason or f'parity {e.parity:.3f} < {e.threshold:g}'})"
                _step(f, cycle, record, None, news)
            case ev.Promoted():
                head = e.generation
                if e.generation == name:
                    f.pending = False
                    _step(f, cycle, record, "promoted", "proposed and promoted, in burn-in")
                elif e.previous_head == name:
                    _step(f, cycle, record, None, None)
            case ev.BurnInPassed() if e.generation == name:
                _step(f, cycle, record, None, "proposed and promoted")
            case ev.BurnInFailed() if e.generation == name:
                _step(f, cycle, record, None, f"proposed and promoted, burn-in failed: {e.reason}")
            case ev.RolledBack():
                head = e.to_generation
                if e.from_generation == name and e.to_generation != name:
                    if "burn-in failed" in f.news:
                        news = f"{f.news}; rolled back to {e.to_generation}"
                    else:
                        news = f"proposed and promoted, then rolled back to {e.to_generation}: {e.reason}"
                    _step(f, cycle, record, "rolled_back", news)
                elif e.to_generation == name:
                    _step(f, cycle, record, None, None)
                elif f.pending:
                    f.pending = False
                    _step(f, cycle, record, None, f"proposed, aborted by rollback: {e.reason}")
            case _:
                pass

    if f.spawn is not None:
        return _candidate(f, head, baselines)
    if f.genesis is not None:
        return _genesis(f, head)
    return None


def _genesis(f: _Facts, head: str | None) -> Explanation:
    g = f.genesis
    assert g is not None
    now = "HEAD now" if head == g.generation else f"HEAD now is {head}"
    return Explanation(
        name=g.generation,
        kind="genesis",
        why=f"genesis G{g.gen:03d}, registered as HEAD at cycle {f.cycle}; {now}",
        seq=f.seq,
        cycle=f.cycle,
        gen=g.gen,
        head_now=head == g.generation,
        source=g.source,
        model_hash=g.model_hash,
        archive_hash=g.archive_hash,
        archive=g.archive,
        taught=tuple(f.taught),
        rollout=tuple(f.rollout),
    )


def _candidate(f: _Facts, head: str | None, baselines: dict[int, ev.BaselineEvaluated]) -> Explanation:
    s = f.spawn
    assert s is not None
    base = baselines.get(s.window)
    done = f.evaluated
    breach = None
    if f.breached is not None:
        b = f.breached
        breach = BudgetBreach(
            resource=b.resource, limit=b.limit, used=b.used, over=b.used - b.limit, unit=UNITS.get(b.resource, "")
        )
    used: BudgetUsed | None = None
    outcome = f.breached or f.failed or f.finished
    if outcome is not None:
        used = outcome.budget_used
    score = done.score if done is not None else None
    rank = f.ranking.index(s.candidate) + 1 if s.candidate in f.ranking else None
    verdict = f.frozen.status if f.frozen is not None else ""
    why = _why(f, s.budget, used, rank)
    return Explanation(
        name=s.candidate,
        kind="candidate",
        why=why,
        seq=f.seq,
        cycle=f.cycle,
        gen=s.gen,
        head_now=head == s.candidate,
        model_hash=f.frozen.model_hash if f.frozen else "",
        archive_hash=f.frozen.archive_hash if f.frozen else "",
        archive=f.frozen.archive if f.frozen else "",
        window=s.window,
        window_cycle=f.opened.cycle if f.opened else None,
        head_at_open=f.opened.head if f.opened else None,
        branch=s.branch,
        strategy=s.strategy,
        seed=s.seed,
        parent=s.parent,
        stabilizer=s.stabilizer,
        budget=s.budget,
        attempts=f.attempts,
        training=f.finished.stats if f.finished else None,
        training_failure=f.failed.reason if f.failed else None,
        breach=breach,
        budget_used=used,
        placement=outcome.placement if outcome is not None else None,
        metrics=done.metrics if done else None,
        gates=done.gates if done else (),
        passed=done.passed if done else (False if f.failed or f.breached else None),
        score=score,
        baseline_generation=base.generation if base else None,
        baseline_metrics=base.metrics if base else None,
        baseline_score=base.score if base else None,
        improvement=score - base.score if score is not None and base is not None else None,
        rank=rank,
        ranked=len(f.ranking),
        ranking=f.ranking,
        frozen=f.frozen,
        verdict=verdict,
        window_outcome=f.outcome,
        proposal_hash=f.hashes[-1] if f.hashes else "",
        proposed=f.flags.get("proposed", False),
        approved=f.flags.get("approved", False),
        rejected=f.flags.get("rejected", False),
        shadowed=f.flags.get("shadowed", False),
        promoted=f.flags.get("promoted", False),
        rolled_back=f.flags.get("rolled_back", False),
        taught=tuple(f.taught),
        rollout=tuple(f.rollout),
    )


def _why(f: _Facts, budget: BudgetLimits, used: BudgetUsed | None, rank: int | None) -> str:
    if f.breached is not None:
        b = f.breached
        return "FAIL - budget: " + breach_text(b.resource, b.limit, b.used)
    if f.failed is not None:
        return f"FAIL - training failed: {f.failed.reason}"
    done = f.evaluated
    if done is None:
        if f.finished is not None:
            return "trained, not evaluated yet"
        return f"training (attempt {f.attempts})" if f.attempts else "spawned, not trained yet"
    if not done.passed:
        failed = [g for g in done.gates if not g.passed]
        return "FAIL - " + "; ".join(gate_text(g, budget, used) for g in failed)
    if f.news:
        return f.news
    if not f.ranking:
        return "passed all gates, not ranked yet"
    if rank is not None and rank > 1:
        return f"passed all gates but ranked {_ordinal(rank)}" + (f"; window {f.outcome}" if f.outcome else "")
    if f.outcome:
        return f"passed all gates, ranked 1st, but {f.outcome}" if not f.flags.get("proposed") else f.outcome
    return "passed all gates, ranked 1st, window not concluded yet"


# --------------------------------------------------------------------------- text
