"""What an experiment tracker mirrors of the ledger (``evo mlflow-sync``), as plain values.

Theory of operation. ``tracking(records, step)`` folds the records with ``step`` (the shell
passes its verified fold's: a record the fold flags changes nothing here either) and keeps what
a tracker shows: each window and the candidates it bred, with the ledger time (``at``) of the
records that made them, and every generation that was ever HEAD, in the order it first became
HEAD, with the HEAD after the last record. ``runs(t, files)`` turns that into the runs a
tracker holds: one per window, one per candidate nested in its window's, each with its params,
tags and metric histories (``(step, value, at)`` points whose time is the ledger's, so the same
ledger gives the same points however often it is mirrored). ``files`` are what the shell read
from a candidate's archive (``training.json`` for the loss curve, ``train_args.json`` for the
LoRA and distillation settings): a candidate without them still has the ledger's two loss
points. ``versions(t)`` is the model registry: one version per generation that was HEAD.

Pure: values in, values out; the shell (``adapters.audit.mlflow_mirror``) writes them.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import msgspec

from evo_core import events as ev
from evo_core.state import Candidate, CandidateStatus, State
from evo_core.values import Metrics, TrainingStats

from projections.records import LedgerRecord

Point = tuple[int, float, str]  # (step, value, the ``at`` of the record it comes from)
LEDGER_TAG = "evo.ledger_id"
KEY_TAG = "evo.key"
HEAD_ALIAS = "head"
# train_args.json keys that are machine paths or said elsewhere (the ledger's own params)
_NOT_PARAMS = frozenset({"candidate", "seed", "data_strategy", "path", "index_path"})


class TrackedCandidate(msgspec.Struct, kw_only=True):
    candidate: Candidate  # as the fold left it
    spawned_at: str
    trained_at: str = ""  # TrainingFinished, TrainingFailed or BudgetBreached
    evaluated_at: str = ""
    ranked_at: str = ""
    frozen_at: str = ""
    stats: TrainingStats | None = None
    rank: int | None = None
    proposed: bool = False


class TrackedWindow(msgspec.Struct, kw_only=True):
    opened: ev.WindowOpened
    opened_at: str
    candidates: list[str] = []
    baseline: Metrics | None = None
    baseline_score: float | None = None
    baseline_at: str = ""
    outcome: str = ""  # "" while open, "proposed <candidate>" or "no promotion: <reason>"
    concluded_at: str = ""
    proposal_hash: str = ""
    approval: str = ""
    shadow: str = ""
    promoted: str = ""
    burn_in: str = ""
    rolled_back: bool = False


class TrackedGeneration(msgspec.Struct, kw_only=True):
    name: str
    gen: int
    window: int | None
    archive: str
    archive_hash: str
    model_hash: str
    proposal_hash: str = ""
    revoked: bool = False  # a rollback took it off HEAD: it never serves again


class Tracking(msgspec.Struct, kw_only=True):
    windows: dict[int, TrackedWindow] = {}
    candidates: dict[str, TrackedCandidate] = {}
    generations: dict[str, TrackedGeneration] = {}  # insertion order: as each first became HEAD
    head: str | None = None
    seq: int | None = None  # the last record read


class RunPlan(msgspec.Struct, frozen=True, kw_only=True):
    """One tracker run: ``key`` finds it again (the ``evo.key`` tag beside the ledger id)."""

    key: str
    name: str
    parent: str | None  # the key of the run it nests in
    start_at: str  # the ledger's ``at`` ("" when its records carry none)
    end_at: str  # "" while it runs
    status: str  # RUNNING, FINISHED or FAILED
    params: dict[str, str]
    tags: dict[str, str]
    metrics: dict[str, tuple[Point, ...]]


class VersionPlan(msgspec.Struct, frozen=True, kw_only=True):
    generation: str
    run: str | None  # the key of the candidate's run (None: the genesis)
    archive: str
    description: str
    tags: dict[str, str]


# ---------------------------------------------------------------- the fold


def tracking(records: Iterable[LedgerRecord], step: Callable[[State, ev.Event], State]) -> Tracking:
    t = Tracking()
    state = State()
    for record in records:
        after = step(state, record.event)
        t.seq = record.seq
        if len(after.flagged) == len(state.flagged):  # applied
            _feed(t, after, record.event, record.at)
            if after.head is not None and after.head != state.head:
                _became_head(t, after, after.head, record.event)
        state = after
    for name, tc in t.candidates.items():
        tc.candidate = state.candidates.get(name, tc.candidate)
    for name in state.revoked:
        if name in t.generations:
            t.generations[name].revoked = True
    t.head = state.head
    return t


def _became_head(t: Tracking, state: State, name: str, e: ev.Event) -> None:
    if name in t.generations:
        return
    g = state.generations.get(name)
    if g is None:
        return
    t.generations[name] = TrackedGeneration(
        name=name, gen=g.gen, window=g.window, archive=g.archive, archive_hash=g.archive_hash,
        model_hash=g.model_hash, proposal_hash=e.proposal_hash if isinstance(e, ev.Promoted) else "",
    )


def _window_of(t: Tracking, generation: str) -> TrackedWindow | None:
    c = t.candidates.get(generation)
    return t.windows.get(c.candidate.window) if c is not None else None


def _feed(t: Tracking, state: State, e: ev.Event, at: str) -> None:
    w: TrackedWindow | None
    match e:
        case ev.WindowOpened():
            t.windows[e.window] = TrackedWindow(opened=e, opened_at=at)
        case ev.CandidateSpawned():
            t.candidates[e.candidate] = TrackedCandidate(candidate=state.candidates[e.candidate], spawned_at=at)
            if e.window in t.windows:
                t.windows[e.window].candidates.append(e.candidate)
        case ev.TrainingFinished() if e.candidate in t.candidates:
            t.candidates[e.candidate].trained_at = at
            t.candidates[e.candidate].stats = e.stats
        case ev.TrainingFailed() | ev.BudgetBreached() if e.candidate in t.candidates:
            t.candidates[e.candidate].trained_at = at
        case ev.GateEvaluated() if e.candidate in t.candidates:
            t.candidates[e.candidate].evaluated_at = at
        case ev.CandidateFrozen() if e.candidate in t.candidates:
            t.candidates[e.candidate].frozen_at = at
        case ev.BaselineEvaluated() if e.window in t.windows:
            w = t.windows[e.window]
            w.baseline, w.baseline_score, w.baseline_at = e.metrics, e.score, at
        case ev.CandidatesRanked():
            for i, name in enumerate(e.ranking):
                if name in t.candidates:
                    t.candidates[name].rank, t.candidates[name].ranked_at = i + 1, at
        case ev.Proposed() if e.proposal.window in t.windows:
            w = t.windows[e.proposal.window]
            w.outcome, w.proposal_hash, w.concluded_at = f"proposed {e.proposal.candidate}", e.proposal_hash, at
            if e.proposal.candidate in t.candidates:
                t.candidates[e.proposal.candidate].proposed = True
        case ev.NoPromotion() if e.window in t.windows:
            w = t.windows[e.window]
            w.outcome, w.concluded_at = f"no promotion: {e.reason}", at
        case ev.Approved():
            w = _proposed_in(t, e.proposal_hash)
            if w is not None:
                w.approval = "approved (autonomy)" if e.autonomous else f"approved by {e.operator}"
        case ev.Rejected():
            w = _proposed_in(t, e.proposal_hash)
            if w is not None:
                w.approval = f"rejected by {e.operator}: {e.reason}"
        case ev.ShadowCompleted():
            w = _window_of(t, e.generation)
            if w is not None:
                w.shadow = f"{e.outcome}: parity {e.parity:.3f}, {e.samples} samples"
        case ev.Promoted():
            w = _window_of(t, e.generation)
            if w is not None:
                w.promoted = e.generation
        case ev.BurnInPassed() | ev.BurnInFailed():
            w = _window_of(t, e.generation)
            if w is not None:
                w.burn_in = "passed" if isinstance(e, ev.BurnInPassed) else f"failed: {e.reason}"
        case ev.RolledBack():
            w = _window_of(t, e.from_generation)
            if w is not None:
                w.rolled_back = True
        case _:
            pass


def _proposed_in(t: Tracking, proposal_hash: str) -> TrackedWindow | None:
    return next((w for w in t.windows.values() if w.proposal_hash == proposal_hash), None)


# ---------------------------------------------------------------- runs


def window_key(number: int) -> str:
    return f"window:{number}"


def candidate_key(name: str) -> str:
    return f"candidate:{name}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value, order="sorted").decode()


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as ``a.b`` params; machine paths and the ledger's own params left out."""
    out: dict[str, str] = {}
    for key, v in value.items():
        if key in _NOT_PARAMS:
            continue
        name = f"{prefix}{key}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        elif v is not None:
            out[name] = _text(v)
    return out


def _metrics_points(m: Metrics, score: float | None, ms: str) -> dict[str, tuple[Point, ...]]:
    out: dict[str, tuple[Point, ...]] = {
        "recall": ((0, m.recall, ms),),
        "generalize": ((0, m.generalize, ms),),
        "tone_drift": ((0, m.tone_drift, ms),),
        "law_violations": ((0, float(m.law_violations), ms),),
    }
    if score is not None:
        out["score"] = ((0, score, ms),)
    return out


def window_run(w: TrackedWindow) -> RunPlan:
    o = w.opened
    params = {
        "window": str(o.window), "cycle": str(o.cycle), "heartbeat_cycle": str(o.heartbeat_cycle),
        "period": str(o.period), "gen": str(o.gen), "head": o.head, "since_cycle": str(o.since_cycle),
    }
    if o.parent is not None:
        params["parent"] = o.parent
    tags = {
        "evo.kind": "window", "evo.window": str(o.window), "evo.head": o.head, "evo.outcome": w.outcome or "open",
        "evo.proposal_hash": w.proposal_hash, "evo.approval": w.approval, "evo.shadow": w.shadow,
        "evo.promoted": w.promoted, "evo.burn_in": w.burn_in, "evo.rolled_back": "true" if w.rolled_back else "",
    }
    metrics: dict[str, tuple[Point, ...]] = {"candidates": ((0, float(len(w.candidates)), w.opened_at),)}
    if w.baseline is not None:
        base = _metrics_points(w.baseline, w.baseline_score, w.baseline_at)
        metrics.update({f"baseline.{k}": v for k, v in base.items()})
    return RunPlan(
        key=window_key(o.window), name=f"window-{o.window}", parent=None,
        start_at=w.opened_at, end_at=w.concluded_at if w.outcome else "",
        status="FINISHED" if w.outcome else "RUNNING",
        params=params, tags={k: v for k, v in tags.items() if v}, metrics=metrics,
    )


def _loss(tc: TrackedCandidate, training: Mapping[str, Any], ms: str) -> tuple[Point, ...]:
    curve = training.get("loss_curve")
    if isinstance(curve, list) and curve:
        points = []
        for item in curve:
            if isinstance(item, (list, tuple)) and len(item) == 2:
                points.append((int(item[0]), float(item[1]), ms))
        if points:
            return tuple(points)
    s = tc.stats
    if s is None or s.steps <= 0:
        return ()
    return ((1, s.loss_start, ms), (s.steps, s.loss_final, ms)) if s.steps > 1 else ((1, s.loss_final, ms),)


def candidate_run(tc: TrackedCandidate, files: Mapping[str, Any]) -> RunPlan:
    """``files``: ``training`` and ``train_args`` (dicts, empty when the archive has none)."""
    c = tc.candidate
    params = {
        "strategy": c.strategy, "seed": str(c.seed), "branch": c.branch, "gen": str(c.gen),
        "window": str(c.window), "parent": c.parent, "stabilizer": c.stabilizer or "",
    }
    params.update({f"budget.{k}": _text(v) for k, v in msgspec.to_builtins(c.budget).items()})
    params.update(flatten(files.get("train_args") or {}))
    training: Mapping[str, Any] = files.get("training") or {}
    status = c.verdict or ("FAILED" if c.status is CandidateStatus.FAILED else c.status.value.upper())
    tags = {
        "evo.kind": "candidate", "evo.candidate": c.id, "evo.window": str(c.window), "evo.status": status,
        "evo.passed": ("true" if c.passed else "false") if c.metrics is not None else "",
        "evo.failure": c.failure or "", "evo.proposed": "true" if tc.proposed else "",
        "evo.archive": c.archive, "evo.archive_hash": c.archive_hash, "evo.model_hash": c.model_hash,
        "evo.manifest_hash": c.manifest_hash,
    }
    for g in c.gates:
        tags[f"evo.gate.{g.name}"] = "pass" if g.passed else "fail"
    metrics: dict[str, tuple[Point, ...]] = {}
    evaluated = tc.evaluated_at
    if c.metrics is not None:
        metrics.update(_metrics_points(c.metrics, c.score, evaluated))
        metrics["passed"] = ((0, 1.0 if c.passed else 0.0, evaluated),)
    for g in c.gates:
        metrics[f"gate.{g.name}.passed"] = ((0, 1.0 if g.passed else 0.0, evaluated),)
        metrics[f"gate.{g.name}.value"] = ((0, g.value, evaluated),)
        metrics[f"gate.{g.name}.threshold"] = ((0, g.threshold, evaluated),)
        metrics[f"gate.{g.name}.margin"] = ((0, g.margin, evaluated),)
    if tc.rank is not None:
        metrics["rank"] = ((0, float(tc.rank), tc.ranked_at),)
    trained = tc.trained_at
    used = c.budget_used
    if used is not None:
        for name, value in (
            ("steps", used.steps), ("seconds", used.walltime_minutes * 60.0), ("peak_memory_gb", used.gpu_memory_gb),
            ("tokens_processed", used.tokens_processed), ("disk_gb", used.disk_gb),
        ):
            metrics[f"budget.{name}"] = ((0, float(value), trained),)
    loss = _loss(tc, training, trained)
    if loss:
        metrics["loss"] = loss
    failed = c.status is CandidateStatus.FAILED
    done = c.frozen or failed
    end = tc.frozen_at or tc.trained_at
    return RunPlan(
        key=candidate_key(c.id), name=c.id, parent=window_key(c.window),
        start_at=tc.spawned_at, end_at=end if done else "",
        status="FAILED" if failed else "FINISHED" if done else "RUNNING",
        params=params, tags={k: v for k, v in tags.items() if v}, metrics=metrics,
    )


def runs(t: Tracking, files: Mapping[str, Mapping[str, Any]]) -> list[RunPlan]:
    """Every window's run, each followed by its candidates' (``files`` by candidate)."""
    out: list[RunPlan] = []
    for number in sorted(t.windows):
        w = t.windows[number]
        out.append(window_run(w))
        for name in w.candidates:
            out.append(candidate_run(t.candidates[name], files.get(name, {})))
    return out


def versions(t: Tracking) -> list[VersionPlan]:
    """One registered version per generation that was HEAD, in the order each became HEAD."""
    out = []
    for g in t.generations.values():
        is_candidate = g.name in t.candidates
        how = "the genesis" if not is_candidate else f"promoted from window {g.window}"
        tags = {
            "evo.generation": g.name, "evo.gen": str(g.gen), "evo.archive": g.archive,
            "evo.archive_hash": g.archive_hash, "evo.model_hash": g.model_hash,
            "evo.proposal_hash": g.proposal_hash, "evo.revoked": "true" if g.revoked else "",
        }
        out.append(
            VersionPlan(
                generation=g.name, run=candidate_key(g.name) if is_candidate else None, archive=g.archive,
                description=f"{g.name}: generation G{g.gen:03d}, {how}.",
                tags={k: v for k, v in tags.items() if v},
            )
        )
    return out
