"""Which phase accepts which event: the state machine as a table you can print.

``decide`` checks every event it is about to emit against this table, and ``evo verify``
checks every event of a replayed ledger against it, so a record written out of band that the
machine could never have produced is named with its seq. ``evolve`` itself stays total.

``TRANSITIONS`` lists the phase changes; ``render_mermaid`` draws them for the README.
"""

from __future__ import annotations

from evo_core import events as ev
from evo_core.errors import IllegalTransition
from evo_core.state import Phase

_ALWAYS: frozenset[type[ev.Event]] = frozenset({ev.Heartbeat, ev.WindowSkipped, ev.WorkInterrupted})
# with a HEAD: rollback, the operator's autonomy switch, and refusals (recorded for auditors)
_ROLLBACK: frozenset[type[ev.Event]] = frozenset({ev.RolledBack, ev.AutonomyChanged, ev.ApprovalRefused})

ACCEPTS: dict[Phase, frozenset[type[ev.Event]]] = {
    Phase.EMPTY: _ALWAYS | {ev.GenerationRegistered},
    Phase.IDLE: _ALWAYS | _ROLLBACK | {ev.WindowOpened},
    Phase.WINDOW: _ALWAYS
    | _ROLLBACK
    | {
        ev.CandidateSpawned,
        ev.BaselineEvaluated,
        ev.TrainingStarted,
        ev.TrainingFinished,
        ev.TrainingFailed,
        ev.BudgetBreached,
        ev.GateEvaluated,
        ev.CandidatesRanked,
        ev.CandidateFrozen,
        ev.Proposed,
        ev.NoPromotion,
    },
    Phase.PROPOSED: _ALWAYS | _ROLLBACK | {ev.Approved, ev.Rejected},
    Phase.APPROVED: _ALWAYS | _ROLLBACK | {ev.ShadowStarted},
    Phase.SHADOW: _ALWAYS | _ROLLBACK | {ev.ShadowCompared, ev.ShadowCompleted, ev.Promoted},
    Phase.BURN_IN: _ALWAYS | _ROLLBACK | {ev.AnswerObserved, ev.BurnInExtended, ev.BurnInPassed, ev.BurnInFailed},
}

# (from, event, to): the edges that change the phase.
TRANSITIONS: tuple[tuple[Phase, str, Phase], ...] = (
    (Phase.EMPTY, "GenerationRegistered", Phase.IDLE),
    (Phase.IDLE, "WindowOpened", Phase.WINDOW),
    (Phase.WINDOW, "Proposed", Phase.PROPOSED),
    (Phase.WINDOW, "NoPromotion", Phase.IDLE),
    (Phase.PROPOSED, "Approved", Phase.APPROVED),
    (Phase.PROPOSED, "Rejected", Phase.IDLE),
    (Phase.APPROVED, "ShadowStarted", Phase.SHADOW),
    (Phase.APPROVED, "ApprovalRefused", Phase.PROPOSED),
    (Phase.SHADOW, "ShadowCompleted (failed)", Phase.IDLE),
    (Phase.SHADOW, "Promoted", Phase.BURN_IN),
    (Phase.BURN_IN, "BurnInPassed", Phase.IDLE),
    (Phase.BURN_IN, "BurnInFailed + RolledBack", Phase.IDLE),
    (Phase.PROPOSED, "RolledBack", Phase.IDLE),
    (Phase.APPROVED, "RolledBack", Phase.IDLE),
    (Phase.SHADOW, "RolledBack", Phase.IDLE),
    (Phase.BURN_IN, "RolledBack", Phase.IDLE),
)


def accepts(phase: Phase, event: ev.Event) -> bool:
    return type(event) in ACCEPTS[phase]


def ensure_accepts(phase: Phase, event: ev.Event) -> None:
    if not accepts(phase, event):
        raise IllegalTransition(
            f"{ev.event_name(event)} is not allowed in phase {phase.value!r}"
        )


def render_table() -> str:
    """The table as Markdown: one row per phase, the events it accepts."""
    rows = ["| phase | accepts |", "| --- | --- |"]
    for phase, accepted in ACCEPTS.items():
        names = ", ".join(sorted(cls.__name__ for cls in accepted))
        rows.append(f"| `{phase.value}` | {names} |")
    return "\n".join(rows)


def render_mermaid() -> str:
    lines = ["stateDiagram-v2", "    [*] --> empty"]
    for src, label, dst in TRANSITIONS:
        lines.append(f"    {src.value} --> {dst.value}: {label}")
    return "\n".join(lines)
