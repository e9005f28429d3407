"""``decide`` for the runner's commands inside a window: spawn, train, evaluate, rank, freeze,
conclude. Each handler checks the candidate's status and returns the events, or raises."""

from __future__ import annotations

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import DomainError, InvalidInput, NothingPending
from evo_core.gates import budget_breaches, check_metrics, evaluate_gates, score
from evo_core.guards import Events, finite, is_hex64
from evo_core.state import Candidate, CandidateStatus, Phase, State
from evo_core.values import BudgetUsed, Placement
from evo_core.window import candidate_name, draft_proposal, plan_branches, rank, verdict


def _open_window(state: State) -> None:
    if state.phase is not Phase.WINDOW or state.window is None:
        raise NothingPending(f"no evolution window is open (phase {state.phase.value})")


def _window_candidate(state: State, cid: str, *allowed: CandidateStatus) -> Candidate:
    _open_window(state)
    assert state.window is not None
    if cid not in state.window.candidates:
        raise NothingPending(f"{cid} is not a candidate of window {state.window.number}")
    cand = state.candidates[cid]
    if allowed and cand.status not in allowed:
        names = "/".join(s.value for s in allowed)
        raise DomainError(f"{cid} is {cand.status.value}, expected {names}")
    return cand


def spawn(state: State, c: cmd.SpawnCandidates) -> Events:
    _open_window(state)
    window = state.window
    assert window is not None
    if window.candidates:
        raise DomainError(f"window {window.number} already spawned its candidates")
    cfg = c.config
    plan = plan_branches(cfg.max_concurrent_experiments, cfg.seed_base, cfg.data_strategies)
    seeds = [seed for _, seed, _ in plan]
    if len(set(seeds)) != len(seeds) or len({(s, st) for _, s, st in plan}) != len(plan):
        raise InvalidInput("seeds and (strategy, seed) must be distinct within a window")
    return [
        ev.CandidateSpawned(
            window=window.number,
            candidate=candidate_name(cfg.agent_name, window.gen, branch, window.cycle),
            gen=window.gen,
            branch=branch,
            seed=seed,
            strategy=strategy,
            parent=window.head,
            stabilizer=window.parent,
            budget=cfg.budget.limits(),
        )
        for branch, seed, strategy in plan
    ]


def start_training(state: State, c: cmd.StartTraining) -> Events:
    cand = _window_candidate(
        state, c.candidate, CandidateStatus.SPAWNED, CandidateStatus.TRAINING
    )
    return [ev.TrainingStarted(candidate=c.candidate, attempt=cand.attempts + 1)]


def _check_used(used: BudgetUsed) -> None:
    finite(**{k: float(getattr(used, k)) for k in used.__struct_fields__})


def _check_placement(placement: Placement | None) -> None:
    if placement is None:
        return
    finite(cpus=placement.cpus, gpus=placement.gpus, memory_gb=placement.memory_gb)
    if min(placement.cpus, placement.gpus, placement.memory_gb) < 0:
        raise InvalidInput("a placement's resources are >= 0")
    if not placement.executor.strip() or not placement.node.strip():
        raise InvalidInput("a placement names its executor and node")


def finish_training(state: State, c: cmd.FinishTraining) -> Events:
    cand = _window_candidate(state, c.candidate, CandidateStatus.TRAINING)
    _check_used(c.budget_used)
    _check_placement(c.placement)
    finite(loss_start=c.stats.loss_start, loss_final=c.stats.loss_final)
    breaches = budget_breaches(c.budget_used, cand.budget)
    if breaches:  # the adapter should have stopped it; the core never lets it pass
        resource, limit, used = breaches[0]
        return [
            ev.BudgetBreached(
                candidate=c.candidate,
                resource=resource,
                limit=limit,
                used=used,
                budget_used=c.budget_used,
                placement=c.placement,
            )
        ]
    return [ev.TrainingFinished(candidate=c.candidate, stats=c.stats, budget_used=c.budget_used, placement=c.placement)]


def fail_training(state: State, c: cmd.FailTraining) -> Events:
    _window_candidate(state, c.candidate, CandidateStatus.SPAWNED, CandidateStatus.TRAINING)
    _check_used(c.budget_used)
    _check_placement(c.placement)
    if not c.reason.strip():
        raise InvalidInput("a training failure needs a reason")
    return [ev.TrainingFailed(candidate=c.candidate, reason=c.reason, budget_used=c.budget_used, placement=c.placement)]


def breach(state: State, c: cmd.BreachBudget) -> Events:
    _window_candidate(state, c.candidate, CandidateStatus.TRAINING)
    _check_used(c.budget_used)
    _check_placement(c.placement)
    finite(limit=c.limit, used=c.used)
    return [
        ev.BudgetBreached(
            candidate=c.candidate,
            resource=c.resource,
            limit=c.limit,
            used=c.used,
            budget_used=c.budget_used,
            placement=c.placement,
        )
    ]


def baseline(state: State, c: cmd.RecordBaseline) -> Events:
    _open_window(state)
    assert state.window is not None
    if state.window.baseline is not None:
        raise DomainError(f"window {state.window.number} already has HEAD's metrics")
    check_metrics(c.metrics)
    return [
        ev.BaselineEvaluated(
            window=state.window.number,
            generation=state.window.head,
            metrics=c.metrics,
            score=score(c.metrics, c.config.score.weights()),
        )
    ]


def evaluate(state: State, c: cmd.RecordEvaluation) -> Events:
    cand = _window_candidate(state, c.candidate, CandidateStatus.TRAINED)
    assert state.window is not None
    baseline = state.window.baseline
    if baseline is None:
        raise DomainError("HEAD's metrics for this window are not recorded yet")
    check_metrics(c.metrics)
    g = c.config.gates
    gates = evaluate_gates(
        c.metrics,
        baseline,
        cand.budget_used or BudgetUsed(),
        cand.budget,
        epsilon=g.epsilon,
        delta=g.delta,
        theta=g.theta,
        confidence=g.confidence,
    )
    return [
        ev.GateEvaluated(
            candidate=c.candidate,
            metrics=c.metrics,
            gates=gates,
            passed=all(gate.passed for gate in gates),
            score=score(c.metrics, c.config.score.weights()),
        )
    ]


def rank_candidates(state: State, c: cmd.Rank) -> Events:
    _open_window(state)
    window = state.window
    assert window is not None
    if window.ranking is not None:
        raise DomainError(f"window {window.number} is already ranked")
    cands = state.window_candidates()
    pending = [x.id for x in cands if x.status not in (CandidateStatus.FAILED, CandidateStatus.EVALUATED)]
    if not cands or pending:
        raise DomainError(f"cannot rank yet: {', '.join(pending) or 'no candidates'} not done")
    return [ev.CandidatesRanked(window=window.number, ranking=rank(cands))]


def freeze(state: State, c: cmd.Freeze) -> Events:
    cand = _window_candidate(state, c.candidate)
    assert state.window is not None
    if state.window.ranking is None:
        raise DomainError("candidates are frozen after ranking")
    if cand.frozen:
        raise DomainError(f"{c.candidate} is already frozen (an archive is written once)")
    if not c.archive or not c.archive_hash:
        raise InvalidInput("a frozen archive needs its path and hash")
    return [
        ev.CandidateFrozen(
            candidate=c.candidate,
            status=verdict(cand),
            archive=c.archive,
            archive_hash=c.archive_hash,
            model_hash=c.model_hash,
            manifest_hash=c.manifest_hash,
        )
    ]


def propose(state: State, c: cmd.Propose) -> Events:
    _open_window(state)
    window = state.window
    assert window is not None
    unfrozen = [x.id for x in state.window_candidates() if not x.frozen]
    if window.ranking is None or unfrozen:
        raise DomainError(f"cannot conclude the window: not frozen yet: {', '.join(unfrozen)}")
    draft, reason = draft_proposal(state)
    if draft is None:
        if c.proposal is not None:
            raise InvalidInput(f"nothing may be proposed: {reason}")
        return [ev.NoPromotion(window=window.number, reason=reason)]
    if c.proposal != draft:
        raise InvalidInput("the proposal does not match the window's ranking and gates")
    if not is_hex64(c.proposal_hash):
        raise InvalidInput("a proposal needs its blake3 hash: 64 lowercase hex digits")
    return [ev.Proposed(proposal=draft, proposal_hash=c.proposal_hash)]
