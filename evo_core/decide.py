"""``decide(state, command) -> list[event]``: pure. An illegal command raises a typed
``DomainError`` and nothing is returned, so nothing is appended.

Every event a handler returns is checked against the phase table (``transitions``) while it is
folded, so a handler can never emit a move the machine does not allow. The shell appends the
returned events as one atomic batch with the ledger's expected seq; if the ledger moved in the
meantime it re-reads and decides again.

Rules held here (the invariants the property tests check):
- heartbeat cycles strictly increase;
- every multiple of the period that a heartbeat reaches or crosses opens a window or is
  recorded as skipped with its reason (never lost); one evolution at a time;
- seeds and (strategy, seed) are distinct within a window, at most ``max_concurrent`` <= HARD_CAP;
- a breached budget hard-fails its candidate; every candidate is frozen exactly once;
- a proposal names only a candidate that passed every gate and beats HEAD's score;
- Promoted needs an Approved naming the pending proposal's hash;
- HEAD only ever points at a promoted generation (or the genesis); rollback targets only a
  generation that was promoted before.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.errors import (
    CycleError,
    DomainError,
    InvalidInput,
    NothingPending,
    RollbackError,
    StaleProposal,
)
from evo_core.evolve import evolve
from evo_core.gates import budget_breaches, check_metrics, evaluate_gates, score
from evo_core.state import Candidate, CandidateStatus, Phase, State
from evo_core.transitions import ensure_accepts
from evo_core.window import candidate_name, draft_proposal, plan_branches, rank, verdict

Events = list[ev.Event]


def decide(state: State, command: cmd.Command) -> Events:
    handler = _HANDLERS.get(type(command))
    if handler is None:
        raise DomainError(f"unknown command {type(command).__name__}")
    events = handler(state, command)
    for event in events:
        ensure_accepts(state.phase, event)
        state = evolve(state, event)
    return events


# ---------------------------------------------------------------- heartbeats and windows


def _beat(state: State, c: cmd.Beat) -> Events:
    if c.period < 1:
        raise InvalidInput(f"evo_period_cycles must be >= 1, got {c.period}")
    if c.count < 1:
        raise InvalidInput(f"--count must be >= 1, got {c.count}")
    first = state.cycle + 1 if c.cycle is None else c.cycle
    if first <= state.cycle:
        raise CycleError(
            f"cycle {first} does not increase: the last heartbeat was cycle {state.cycle}"
        )
    out: Events = []
    busy, phase = state.busy, state.phase
    last_window, windows = state.last_window_cycle, state.windows
    for cycle in range(first, first + c.count):
        out.append(ev.Heartbeat(cycle=cycle))
        due_first = (last_window // c.period + 1) * c.period
        if due_first > cycle:
            continue
        due_last = (cycle // c.period) * c.period
        count = (due_last - due_first) // c.period + 1
        if state.head is None:
            reason = "no generation registered yet (run `evo init`)"
        elif busy:
            reason = f"evolution in progress (phase {phase.value})"
        else:
            windows += 1
            out.append(
                ev.WindowOpened(
                    window=windows,
                    cycle=due_first,
                    heartbeat_cycle=cycle,
                    period=c.period,
                    gen=state.generations[state.head].gen + 1,
                    head=state.head,
                    parent=state.parent,
                    since_cycle=state.window.cycle if state.window else 0,
                )
            )
            busy, phase = True, Phase.WINDOW
            due_first += c.period
            count -= 1
            reason = f"evolution in progress (window {windows} opened by this heartbeat)"
        if count:
            out.append(
                ev.WindowSkipped(
                    first_cycle=due_first,
                    last_cycle=due_last,
                    count=count,
                    heartbeat_cycle=cycle,
                    reason=reason,
                )
            )
        last_window = due_last
    return out


def _register(state: State, c: cmd.RegisterGenesis) -> Events:
    if state.phase is not Phase.EMPTY:
        raise DomainError(f"a genesis generation is already registered: {state.genesis}")
    return [
        ev.GenerationRegistered(
            generation=c.generation,
            gen=0,
            source=c.source,
            model_hash=c.model_hash,
            archive_hash=c.archive_hash,
            archive=c.archive,
        )
    ]


# ---------------------------------------------------------------- the window


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


def _is_hex64(text: str) -> bool:
    return len(text) == 64 and all(ch in "0123456789abcdef" for ch in text)


def _finite(**values: float) -> None:
    for name, value in values.items():
        if not math.isfinite(value):
            raise InvalidInput(f"{name} is not a finite number: {value!r}")


def _spawn(state: State, c: cmd.SpawnCandidates) -> Events:
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


def _start_training(state: State, c: cmd.StartTraining) -> Events:
    cand = _window_candidate(
        state, c.candidate, CandidateStatus.SPAWNED, CandidateStatus.TRAINING
    )
    return [ev.TrainingStarted(candidate=c.candidate, attempt=cand.attempts + 1)]


def _check_used(used: ev.BudgetUsed) -> None:
    _finite(**{k: float(getattr(used, k)) for k in used.__struct_fields__})


def _finish_training(state: State, c: cmd.FinishTraining) -> Events:
    cand = _window_candidate(state, c.candidate, CandidateStatus.TRAINING)
    _check_used(c.budget_used)
    _finite(loss_start=c.stats.loss_start, loss_final=c.stats.loss_final)
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
            )
        ]
    return [ev.TrainingFinished(candidate=c.candidate, stats=c.stats, budget_used=c.budget_used)]


def _fail_training(state: State, c: cmd.FailTraining) -> Events:
    _window_candidate(state, c.candidate, CandidateStatus.SPAWNED, CandidateStatus.TRAINING)
    _check_used(c.budget_used)
    if not c.reason.strip():
        raise InvalidInput("a training failure needs a reason")
    return [ev.TrainingFailed(candidate=c.candidate, reason=c.reason, budget_used=c.budget_used)]


def _breach(state: State, c: cmd.BreachBudget) -> Events:
    _window_candidate(state, c.candidate, CandidateStatus.TRAINING)
    _check_used(c.budget_used)
    _finite(limit=c.limit, used=c.used)
    return [
        ev.BudgetBreached(
            candidate=c.candidate,
            resource=c.resource,
            limit=c.limit,
            used=c.used,
            budget_used=c.budget_used,
        )
    ]


def _baseline(state: State, c: cmd.RecordBaseline) -> Events:
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


def _evaluate(state: State, c: cmd.RecordEvaluation) -> Events:
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
        cand.budget_used or ev.BudgetUsed(),
        cand.budget,
        epsilon=g.epsilon,
        delta=g.delta,
        theta=g.theta,
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


def _rank(state: State, c: cmd.Rank) -> Events:
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


def _freeze(state: State, c: cmd.Freeze) -> Events:
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


def _propose(state: State, c: cmd.Propose) -> Events:
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
    if not _is_hex64(c.proposal_hash):
        raise InvalidInput("a proposal needs its blake3 hash: 64 lowercase hex digits")
    return [ev.Proposed(proposal=draft, proposal_hash=c.proposal_hash)]


# ---------------------------------------------------------------- the operator


def _pending(state: State, given: str | None, verb: str) -> str:
    if state.phase is not Phase.PROPOSED or state.proposal is None:
        raise NothingPending(f"nothing to {verb}: no proposal is pending (phase {state.phase.value})")
    current = state.proposal.hash
    if given is not None and (len(given) < 8 or not current.startswith(given.lower())):
        raise StaleProposal(
            f"proposal {given[:16]} is not the pending one ({current[:16]}); see `evo status`"
        )
    if state.proposal.proposal.current_head != state.head:
        raise StaleProposal(
            f"HEAD moved to {state.head} since this proposal was made against "
            f"{state.proposal.proposal.current_head}; roll back to it or wait for the next window"
        )
    return current


def _approve(state: State, c: cmd.Approve) -> Events:
    digest = _pending(state, c.proposal_hash, "approve")
    return [ev.Approved(proposal_hash=digest, operator=c.operator, signature=c.signature, key_id=c.key_id)]


def _reject(state: State, c: cmd.Reject) -> Events:
    if not c.reason.strip():
        raise InvalidInput("a rejection needs a reason (--reason)")
    digest = _pending(state, c.proposal_hash, "reject")
    return [
        ev.Rejected(
            proposal_hash=digest,
            operator=c.operator,
            reason=c.reason,
            signature=c.signature,
            key_id=c.key_id,
        )
    ]


def _resolve_promoted(state: State, name: str) -> str:
    if name in state.promoted:
        return name
    matches = [g for g in state.promoted if g.startswith(name)]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(state.promoted)
    if matches:
        raise RollbackError(f"{name!r} is ambiguous: {', '.join(matches)}")
    raise RollbackError(f"{name} was never promoted; rollback targets: {known}")


def _rollback(state: State, c: cmd.Rollback) -> Events:
    if state.head is None:
        raise RollbackError("nothing to roll back: no generation is registered")
    aborting = state.phase in (Phase.APPROVED, Phase.SHADOW)
    if c.to is not None:
        target = _resolve_promoted(state, c.to)
    elif aborting:
        target = state.head  # the shadow never reached HEAD: aborting it is the rollback
    elif state.phase is Phase.BURN_IN and state.burn_in is not None:
        target = state.burn_in.previous_head
    else:
        head_gen = state.generations[state.head].gen
        earlier = [g for g in state.promoted if state.generations[g].gen < head_gen]
        if not earlier:
            raise RollbackError(f"no earlier promoted generation to roll back to (HEAD is {state.head})")
        target = max(earlier, key=lambda g: (state.generations[g].gen, state.promoted.index(g)))
    if target == state.head and not aborting:
        raise RollbackError(f"{target} is already HEAD")
    return [
        ev.RolledBack(
            from_generation=state.head, to_generation=target, reason=c.reason, operator=c.operator
        )
    ]


# ---------------------------------------------------------------- shadow, cutover, burn-in


def _start_shadow(state: State, c: cmd.StartShadow) -> Events:
    if state.phase is not Phase.APPROVED or state.proposal is None:
        raise NothingPending(f"no approved proposal to shadow (phase {state.phase.value})")
    s = c.config.shadow
    return [
        ev.ShadowStarted(
            generation=state.proposal.proposal.candidate,
            start_cycle=state.cycle,
            until_cycle=state.cycle + s.cycles,
            traffic_percent=s.traffic_percent,
        )
    ]


def _record_shadow(state: State, c: cmd.RecordShadow) -> Events:
    if state.phase is not Phase.SHADOW or state.shadow is None:
        raise NothingPending(f"no shadow phase is running (phase {state.phase.value})")
    _finite(similarity=c.similarity)
    if not 0.0 <= c.similarity <= 1.0:
        raise InvalidInput(f"similarity must be in [0, 1], got {c.similarity}")
    return [
        ev.ShadowCompared(
            generation=state.shadow.generation,
            cycle=state.cycle,
            exact=c.exact,
            similarity=c.similarity,
            query_id=c.query_id,
        )
    ]


def _complete_shadow(state: State, c: cmd.CompleteShadow) -> Events:
    shadow, pending = state.shadow, state.proposal
    if state.phase is not Phase.SHADOW or shadow is None or pending is None:
        raise NothingPending(f"no shadow phase is running (phase {state.phase.value})")
    if state.cycle < shadow.until_cycle:
        raise DomainError(f"the shadow runs until cycle {shadow.until_cycle} (now {state.cycle})")
    s = c.config.shadow
    parity = shadow.similarity_sum / shadow.samples if shadow.samples else 0.0
    common: dict[str, Any] = dict(
        generation=shadow.generation, samples=shadow.samples, parity=parity, threshold=s.parity_threshold
    )
    if shadow.samples < s.min_samples:
        return [ev.ShadowCompleted(outcome="inconclusive", until_cycle=state.cycle + s.cycles, **common)]
    if parity < s.parity_threshold:
        return [ev.ShadowCompleted(outcome="failed", **common)]
    if pending.approved_by is None:  # unreachable through the table, kept as the rule's guard
        raise DomainError("Promoted needs an approval of the pending proposal")
    assert state.head is not None
    return [
        ev.ShadowCompleted(outcome="passed", **common),
        ev.Promoted(
            generation=shadow.generation,
            previous_head=state.head,
            proposal_hash=pending.hash,
            cycle=state.cycle,
            burn_in_until=state.cycle + c.config.burn_in.cycles,
        ),
    ]


def _complete_burn_in(state: State, c: cmd.CompleteBurnIn) -> Events:
    burn = state.burn_in
    if state.phase is not Phase.BURN_IN or burn is None:
        raise NothingPending(f"no burn-in is running (phase {state.phase.value})")
    if state.cycle < burn.until_cycle:
        raise DomainError(f"the burn-in runs until cycle {burn.until_cycle} (now {state.cycle})")
    if min(c.answers, c.errors, c.law_violations) < 0 or c.errors > c.answers:
        raise InvalidInput("burn-in counts must be non-negative and errors <= answers")
    b = c.config.burn_in
    problems = []
    if c.answers and c.errors / c.answers > b.max_error_rate:
        problems.append(f"error rate {c.errors / c.answers:.3f} > {b.max_error_rate}")
    if c.law_violations > b.max_law_violations:
        problems.append(f"{c.law_violations} law violations > {b.max_law_violations}")
    if c.latency_ratio is not None:
        _finite(latency_ratio=c.latency_ratio)
        if c.latency_ratio > b.max_latency_ratio:
            problems.append(f"latency {c.latency_ratio:.2f}x HEAD's > {b.max_latency_ratio}x")
    counts = dict(answers=c.answers, errors=c.errors, law_violations=c.law_violations)
    if not problems:
        return [ev.BurnInPassed(generation=burn.generation, **counts)]
    reason = "burn-in failed: " + "; ".join(problems)
    return [
        ev.BurnInFailed(generation=burn.generation, reason=reason, **counts),
        ev.RolledBack(
            from_generation=burn.generation,
            to_generation=burn.previous_head,
            reason=reason,
            automatic=True,
        ),
    ]


_HANDLERS: dict[type[cmd.Command], Callable[[State, Any], Events]] = {
    cmd.Beat: _beat,
    cmd.RegisterGenesis: _register,
    cmd.SpawnCandidates: _spawn,
    cmd.StartTraining: _start_training,
    cmd.FinishTraining: _finish_training,
    cmd.FailTraining: _fail_training,
    cmd.BreachBudget: _breach,
    cmd.RecordBaseline: _baseline,
    cmd.RecordEvaluation: _evaluate,
    cmd.Rank: _rank,
    cmd.Freeze: _freeze,
    cmd.Propose: _propose,
    cmd.Approve: _approve,
    cmd.Reject: _reject,
    cmd.Rollback: _rollback,
    cmd.StartShadow: _start_shadow,
    cmd.RecordShadow: _record_shadow,
    cmd.CompleteShadow: _complete_shadow,
    cmd.CompleteBurnIn: _complete_burn_in,
}
