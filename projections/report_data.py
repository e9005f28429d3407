"""What ``evo report`` shows, gathered in one pass over the records (the HTML is the adapter's).

- ``nodes``: the lineage, the genesis first, then every candidate with the generation it was
  bred from (its ``parent``, HEAD when its window opened), its verdict and what became of it.
- ``windows``: one row per window: its cycle, HEAD at open, HEAD's baseline, the candidates
  with verdicts, scores and ranks, and its outcome through the rollout (the proposal, the
  operator's answer, the shadow, the promotion, burn-in, and the rollbacks that followed).
- ``plots``: recall, generalize, tone drift and score per window, HEAD's baseline as one
  series and each branch (a, b, ...) as another.

Event types this module does not know are skipped.
"""

from __future__ import annotations

from typing import Iterable

import msgspec

from evo_core import events as ev
from evo_core.evolve import evolve
from evo_core.state import CandidateStatus, State
from evo_core.values import Metrics

from projections.candidates import status_label
from projections.records import LedgerRecord, clocked
from projections.summary import shadow_quality

PLOTTED = ("recall", "generalize", "tone_drift", "score")
_FOLDED = frozenset(ev.EVENT_TYPES.values())


class ReportCandidate(msgspec.Struct, kw_only=True):
    name: str
    window: int
    gen: int
    branch: str
    strategy: str
    seed: int
    parent: str
    stabilizer: str | None
    # from the folded state at the end of the records (``_settle``)
    status: str = "SPAWNED"  # ``status_label``: SPAWNED/TRAINING/TRAINED, then the verdict
    failed: bool = False
    metrics: Metrics | None = None
    score: float | None = None
    promoted: bool = False
    head: bool = False  # GEN_HEAD at the end of the records
    # from the events (the state keeps only the current window's ranking and proposal)
    rank: int | None = None
    proposed: bool = False
    rolled_back: bool = False


class ReportWindow(msgspec.Struct, kw_only=True):
    number: int
    cycle: int
    gen: int
    head: str  # HEAD when it opened
    baseline: Metrics | None = None
    baseline_score: float | None = None
    candidates: list[ReportCandidate] = []
    outcome: str = "open"  # "proposed <name>" or "no promotion: <reason>"
    proposal_hash: str = ""
    approval: str = ""
    shadow: str = ""
    promoted: str = ""
    burn_in: str = ""
    rollbacks: list[str] = []


class LineageNode(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str  # "genesis" or "candidate"
    gen: int
    window: int | None
    parent: str | None
    status: str
    score: float | None
    failed: bool
    proposed: bool
    promoted: bool  # ever HEAD by promotion (the genesis: always)
    rolled_back: bool
    head: bool


class Point(msgspec.Struct, frozen=True, kw_only=True):
    x: int  # the window
    y: float
    label: str  # the generation measured
    passed: bool | None  # None for HEAD's baseline


class Series(msgspec.Struct, frozen=True, kw_only=True):
    label: str  # "HEAD" or "branch a"
    points: tuple[Point, ...]


class Plot(msgspec.Struct, frozen=True, kw_only=True):
    metric: str
    series: tuple[Series, ...]


class ReportData(msgspec.Struct, frozen=True, kw_only=True):
    seq: int | None  # the last record read (None: empty ledger)
    cycle: int
    head: str | None
    genesis: str | None
    nodes: tuple[LineageNode, ...]
    windows: tuple[ReportWindow, ...]
    plots: tuple[Plot, ...]
    skipped: tuple[str, ...]  # windows that did not open, one line per WindowSkipped
    checkpoint: str = ""  # "seq:hash", filled in by the shell (records carry no hash here)


class _Pass(msgspec.Struct, kw_only=True):
    state: State = State()
    genesis: ev.GenerationRegistered | None = None
    seq: int | None = None
    windows: dict[int, ReportWindow] = {}
    candidates: dict[str, ReportCandidate] = {}
    proposals: dict[str, int] = {}  # proposal hash -> window
    rolled_back: set[str] = set()
    skipped: list[str] = []


def _window_of(p: _Pass, generation: str) -> ReportWindow | None:
    c = p.candidates.get(generation)
    return p.windows.get(c.window) if c is not None else None


def _feed(p: _Pass, cycle: int, e: ev.Event) -> None:
    w: ReportWindow | None
    match e:
        case ev.GenerationRegistered():
            p.genesis = e
        case ev.WindowOpened():
            p.windows[e.window] = ReportWindow(number=e.window, cycle=e.cycle, gen=e.gen, head=e.head)
        case ev.WindowSkipped():
            span = str(e.first_cycle) if e.count == 1 else f"{e.first_cycle}..{e.last_cycle}"
            p.skipped.append(f"cycle {span} ({e.count}): {e.reason}")
        case ev.CandidateSpawned():
            c = ReportCandidate(
                name=e.candidate,
                window=e.window,
                gen=e.gen,
                branch=e.branch,
                strategy=e.strategy,
                seed=e.seed,
                parent=e.parent,
                stabilizer=e.stabilizer,
            )
            p.candidates[e.candidate] = c
            if e.window in p.windows:
                p.windows[e.window].candidates.append(c)
        case ev.BaselineEvaluated() if e.window in p.windows:
            w = p.windows[e.window]
            w.baseline, w.baseline_score = e.metrics, e.score
        case ev.CandidatesRanked():
            for i, name in enumerate(e.ranking):
                if name in p.candidates:
                    p.candidates[name].rank = i + 1
        case ev.Proposed():
            w = p.windows.get(e.proposal.window)
            p.proposals[e.proposal_hash] = e.proposal.window
            if e.proposal.candidate in p.candidates:
                p.candidates[e.proposal.candidate].proposed = True
            if w is not None:
                w.outcome, w.proposal_hash = f"proposed {e.proposal.candidate}", e.proposal_hash
        case ev.NoPromotion() if e.window in p.windows:
            p.windows[e.window].outcome = f"no promotion: {e.reason}"
        case ev.Approved() if e.proposal_hash in p.proposals:
            who = "the scheduler (autonomy)" if e.autonomous else e.operator
            signed = " (signed)" if e.signature else ""
            p.windows[p.proposals[e.proposal_hash]].approval = f"approved by {who}{signed} at cycle {cycle}"
        case ev.ApprovalRefused() if e.proposal_hash in p.proposals:
            w = p.windows[p.proposals[e.proposal_hash]]
            refused = f"{e.action} by {e.operator} refused at cycle {cycle}: {e.reason}"
            w.approval = f"{w.approval}; {refused}" if w.approval else refused
        case ev.Rejected() if e.proposal_hash in p.proposals:
            p.windows[p.proposals[e.proposal_hash]].approval = (
                f"rejected by {e.operator} at cycle {cycle}: {e.reason}"
            )
        case ev.ShadowCompleted():
            w = _window_of(p, e.generation)
            if w is not None:
                w.shadow = f"{e.outcome}: parity {e.parity:.3f} (threshold {e.threshold:g}){shadow_quality(e)}, {e.samples} samples"
        case ev.Promoted():
            w = _window_of(p, e.generation)
            if w is not None:
                w.promoted = f"{e.generation} at cycle {e.cycle}"
                w.burn_in = f"until cycle {e.burn_in_until}"
        case ev.BurnInExtended():
            w = _window_of(p, e.generation)
            if w is not None:
                w.burn_in = f"extended until cycle {e.until_cycle} ({e.answers} of {e.min_answers} answers)"
        case ev.BurnInPassed():
            w = _window_of(p, e.generation)
            if w is not None:
                w.burn_in = f"passed ({e.answers} answers, {e.errors} errors)"
        case ev.BurnInFailed():
            w = _window_of(p, e.generation)
            if w is not None:
                w.burn_in = f"failed: {e.reason}"
        case ev.RolledBack():
            if e.from_generation != e.to_generation:
                p.rolled_back.add(e.from_generation)
                if e.from_generation in p.candidates:
                    p.candidates[e.from_generation].rolled_back = True
            how = "automatic" if e.automatic else f"by {e.operator}" if e.operator else "manual"
            line = f"{e.from_generation} -> {e.to_generation} at cycle {cycle} ({how}): {e.reason}"
            if p.windows:
                p.windows[max(p.windows)].rollbacks.append(line)
        case _:
            pass


def _nodes(p: _Pass) -> tuple[LineageNode, ...]:
    out: list[LineageNode] = []
    if p.genesis is not None:
        g = p.genesis
        out.append(
            LineageNode(
                name=g.generation,
                kind="genesis",
                gen=g.gen,
                window=None,
                parent=None,
                status="GENESIS",
                score=None,
                failed=False,
                proposed=False,
                promoted=True,
                rolled_back=g.generation in p.rolled_back,
                head=p.state.head == g.generation,
            )
        )
    for c in p.candidates.values():
        out.append(
            LineageNode(
                name=c.name,
                kind="candidate",
                gen=c.gen,
                window=c.window,
                parent=c.parent,
                status=c.status,
                score=c.score,
                failed=c.failed,
                proposed=c.proposed,
                promoted=c.promoted,
                rolled_back=c.rolled_back,
                head=c.head,
            )
        )
    return tuple(out)


def _value(metric: str, metrics: Metrics, score: float | None) -> float | None:
    if metric == "score":
        return score
    value: float = getattr(metrics, metric)
    return value


def _plots(windows: list[ReportWindow]) -> tuple[Plot, ...]:
    plots = []
    for metric in PLOTTED:
        head: list[Point] = []
        branches: dict[str, list[Point]] = {}
        for w in windows:
            if w.baseline is not None:
                y = _value(metric, w.baseline, w.baseline_score)
                if y is not None:
                    head.append(Point(x=w.number, y=y, label=w.head, passed=None))
            for c in w.candidates:
                if c.metrics is None:
                    continue
                y = _value(metric, c.metrics, c.score)
                if y is not None:
                    point = Point(x=w.number, y=y, label=c.name, passed=not c.failed)
                    branches.setdefault(c.branch, []).append(point)
        series = [Series(label="HEAD", points=tuple(head))]
        for branch in sorted(branches, key=lambda b: (len(b), b)):
            series.append(Series(label=f"branch {branch}", points=tuple(branches[branch])))
        plots.append(Plot(metric=metric, series=tuple(series)))
    return tuple(plots)


def _settle(p: _Pass) -> None:
    """Each candidate's verdict, metrics, promotion and HEAD as the folded state has them."""
    state = p.state
    for name, c in p.candidates.items():
        folded = state.candidates[name]
        c.status = status_label(folded)
        c.failed = folded.status is CandidateStatus.FAILED or bool(folded.gates and not folded.passed)
        c.metrics, c.score = folded.metrics, folded.score
        c.promoted = name in state.promoted
        c.head = state.head == name


def report_data(records: Iterable[LedgerRecord]) -> ReportData:
    p = _Pass()
    for cycle, record in clocked(records):
        if type(record.event) in _FOLDED:  # a type from a newer ledger is skipped, not fatal
            p.state = evolve(p.state, record.event)
        p.seq = record.seq
        _feed(p, cycle, record.event)
    _settle(p)
    windows = [p.windows[n] for n in sorted(p.windows)]
    return ReportData(
        seq=p.seq,
        cycle=p.state.cycle,
        head=p.state.head,
        genesis=p.genesis.generation if p.genesis else None,
        nodes=_nodes(p),
        windows=tuple(windows),
        plots=_plots(windows),
        skipped=tuple(p.skipped),
    )
