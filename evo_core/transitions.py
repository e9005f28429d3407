"""Where each event leads: the state machine as one table you can print.

``TRANSITIONS[phase][event type]`` is the phase that event leads to; a phase accepts exactly the
events its row names, so looking up the move is the check. Two moves depend on more than the
pair, and are data too: a ``Branch`` names a guard on the state before the event and the event,
and the two phases it picks between (a shadow that failed closes the evolution, one that passed
waits for the ``Promoted`` of the same batch; a refused approval goes back to ``proposed`` only if
it is the approval pending).

``evolve`` takes the next phase from here and nowhere else (it computes the other fields itself).
``decide`` checks every event it is about to emit against the table, and ``evo verify`` checks
every event of a replayed ledger, so a record written out of band that the machine could never
have produced is named with its seq. ``evolve`` itself stays total: an event its phase does not
accept leaves the phase where it is. ``ACCEPTS``, the README's phase table and its diagram are
all drawn from ``TRANSITIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeAlias

from evo_core import events as ev
from evo_core.errors import IllegalTransition
from evo_core.state import Phase, State


@dataclass(frozen=True)
class Branch:
    """A conditional move: to ``then`` when ``guard(state, event)`` holds, else to ``otherwise``.
    ``when`` says what the guard checks, for the docs."""

    when: str
    guard: Callable[[State, ev.Event], bool]
    then: Phase
    otherwise: Phase


Move: TypeAlias = Phase | Branch


def _shadow_failed(state: State, event: ev.Event) -> bool:
    return isinstance(event, ev.ShadowCompleted) and event.outcome == "failed"


def _withdraws_the_approval(state: State, event: ev.Event) -> bool:
    """A refused approval (a bad signature found after the fact) of the proposal pending."""
    return (
        isinstance(event, ev.ApprovalRefused)
        and event.action == "approve"
        and state.proposal is not None
        and state.proposal.hash == event.proposal_hash
    )


def _stay(phase: Phase, *events: type[ev.Event]) -> dict[type[ev.Event], Move]:
    return {event: phase for event in events}


# accepted in every phase, never moving it (the trust records are judged by their signatures:
# ``evo_core.authority``)
_ALWAYS = (ev.Heartbeat, ev.WindowSkipped, ev.WorkInterrupted, ev.KeyTrusted, ev.KeyRevoked)
# with a HEAD: the operator's autonomy switch, and refusals (recorded for auditors); RolledBack
# is one too, but it leads somewhere, so each row names it
_HEAD = (ev.AutonomyChanged, ev.ApprovalRefused)

TRANSITIONS: dict[Phase, dict[type[ev.Event], Move]] = {
    Phase.EMPTY: {
        **_stay(Phase.EMPTY, *_ALWAYS),
        ev.GenerationRegistered: Phase.IDLE,
    },
    Phase.IDLE: {
        **_stay(Phase.IDLE, *_ALWAYS, *_HEAD),
        ev.WindowOpened: Phase.WINDOW,
        ev.RolledBack: Phase.IDLE,
    },
    Phase.WINDOW: {
        **_stay(
            Phase.WINDOW,
            *_ALWAYS,
            *_HEAD,
            ev.CandidateSpawned,
            ev.BaselineEvaluated,
            ev.TrainingStarted,
            ev.TrainingFinished,
            ev.TrainingFailed,
            ev.BudgetBreached,
            ev.GateEvaluated,
            ev.CandidatesRanked,
            ev.CandidateFrozen,
        ),
        ev.Proposed: Phase.PROPOSED,
        ev.NoPromotion: Phase.IDLE,
        ev.RolledBack: Phase.WINDOW,  # the window goes on; its proposal is checked against the new HEAD
    },
    Phase.PROPOSED: {
        **_stay(Phase.PROPOSED, *_ALWAYS, *_HEAD),
        ev.Approved: Phase.APPROVED,
        ev.Rejected: Phase.IDLE,
        ev.RolledBack: Phase.IDLE,
    },
    Phase.APPROVED: {
        **_stay(Phase.APPROVED, *_ALWAYS, ev.AutonomyChanged),
        ev.ApprovalRefused: Branch(
            "it refuses the pending approval", _withdraws_the_approval, Phase.PROPOSED, Phase.APPROVED
        ),
        ev.ShadowStarted: Phase.SHADOW,
        ev.RolledBack: Phase.IDLE,
    },
    Phase.SHADOW: {
        **_stay(Phase.SHADOW, *_ALWAYS, *_HEAD, ev.ShadowCompared),
        # passed: the Promoted of the same batch moves on; inconclusive: the shadow runs longer
        ev.ShadowCompleted: Branch("failed", _shadow_failed, Phase.IDLE, Phase.SHADOW),
        ev.Promoted: Phase.BURN_IN,
        ev.RolledBack: Phase.IDLE,
    },
    Phase.BURN_IN: {
        # BurnInFailed stays: the RolledBack of the same batch moves HEAD back and closes
        **_stay(Phase.BURN_IN, *_ALWAYS, *_HEAD, ev.AnswerObserved, ev.BurnInExtended, ev.BurnInFailed),
        ev.BurnInPassed: Phase.IDLE,
        ev.RolledBack: Phase.IDLE,
    },
}

ACCEPTS: dict[Phase, frozenset[type[ev.Event]]] = {
    phase: frozenset(row) for phase, row in TRANSITIONS.items()
}


def next_phase(state: State, event: ev.Event) -> Phase:
    """The phase after ``event``; an event the phase does not accept leaves it where it is."""
    move = TRANSITIONS[state.phase].get(type(event), state.phase)
    if isinstance(move, Branch):
        return move.then if move.guard(state, event) else move.otherwise
    return move


def accepts(phase: Phase, event: ev.Event) -> bool:
    return type(event) in ACCEPTS[phase]


def ensure_accepts(phase: Phase, event: ev.Event) -> None:
    if not accepts(phase, event):
        raise IllegalTransition(
            f"{ev.event_name(event)} is not allowed in phase {phase.value!r}"
        )


def edges() -> list[tuple[Phase, str, Phase]]:
    """The moves the diagram draws, as (from, label, to): every move that leaves its phase (each
    outcome of a branch that does), and the stays of an event that leaves some other phase
    outright (``RolledBack`` during a window), in table order."""
    movers = {
        event
        for phase, row in TRANSITIONS.items()
        for event, move in row.items()
        if isinstance(move, Phase) and move is not phase
    }
    out: list[tuple[Phase, str, Phase]] = []
    for phase, row in TRANSITIONS.items():
        for event, move in row.items():
            name = event.__name__
            if isinstance(move, Branch):
                out += [(phase, f"{name} ({label})", to)
                        for label, to in ((move.when, move.then), ("otherwise", move.otherwise))
                        if to is not phase]
            elif move is not phase or event in movers:
                out.append((phase, name, move))
    return out


def _lead(event: type[ev.Event], move: Move) -> str:
    if isinstance(move, Branch):
        return f"{event.__name__} → `{move.then.value}` if {move.when}, else `{move.otherwise.value}`"
    return f"{event.__name__} → `{move.value}`"


def render_table() -> str:
    """The table as Markdown: one row per phase, the events that leave it where it is and where
    the others lead."""
    rows = ["| phase | stays on | moves on |", "| --- | --- | --- |"]
    for phase, row in TRANSITIONS.items():
        stays = sorted(event.__name__ for event, move in row.items() if move is phase)
        leads = sorted(_lead(event, move) for event, move in row.items() if move is not phase)
        rows.append(f"| `{phase.value}` | {', '.join(stays)} | {'; '.join(leads)} |")
    return "\n".join(rows)


def render_mermaid() -> str:
    lines = ["stateDiagram-v2", "    [*] --> empty"]
    for src, label, dst in edges():
        lines.append(f"    {src.value} --> {dst.value}: {label}")
    return "\n".join(lines)
