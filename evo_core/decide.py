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

from typing import Any, Callable

from evo_core import commands as cmd
from evo_core import decide_rollout as rollout
from evo_core import decide_window as window
from evo_core import events as ev
from evo_core.errors import CycleError, DomainError, InvalidInput
from evo_core.evolve import evolve
from evo_core.guards import Events
from evo_core.state import Phase, State
from evo_core.transitions import ensure_accepts


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


_HANDLERS: dict[type[cmd.Command], Callable[[State, Any], Events]] = {
    cmd.Beat: _beat,
    cmd.RegisterGenesis: _register,
    cmd.SpawnCandidates: window.spawn,
    cmd.StartTraining: window.start_training,
    cmd.FinishTraining: window.finish_training,
    cmd.FailTraining: window.fail_training,
    cmd.BreachBudget: window.breach,
    cmd.RecordBaseline: window.baseline,
    cmd.RecordEvaluation: window.evaluate,
    cmd.Rank: window.rank_candidates,
    cmd.Freeze: window.freeze,
    cmd.Propose: window.propose,
    cmd.Approve: rollout.approve,
    cmd.Reject: rollout.reject,
    cmd.Rollback: rollout.rollback,
    cmd.StartShadow: rollout.start_shadow,
    cmd.RecordShadow: rollout.record_shadow,
    cmd.CompleteShadow: rollout.complete_shadow,
    cmd.RecordAnswer: rollout.record_answer,
    cmd.CompleteBurnIn: rollout.complete_burn_in,
    cmd.RefuseApproval: rollout.refuse,
    cmd.ChangeAutonomy: rollout.change_autonomy,
    cmd.TrustKey: rollout.trust_key,
    cmd.RevokeKey: rollout.revoke_key,
    cmd.RecordInterruption: rollout.interrupted,
}
