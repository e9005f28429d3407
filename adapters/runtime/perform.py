"""How the shell performs what the core says is due: one table from action type to handler.

``reactions(state)`` decides what is due, and nothing else does. ``group`` picks what one turn
performs: every due ``TrainCandidate`` at once (they train side by side in the process pool),
else the first due action. ``perform`` looks up the handler of the group's action type in
``HANDLERS`` and calls it with the actions, which carry the ids the handler needs; a handler
never works out again what is due. One that must know whether its action is still due (its
command refused because another process moved the state first) asks ``still_due``:
``action in reactions(state)``.

While a handler runs, the workspace's activity file names its step (``STEPS``: "evaluating
candidate C"; ``adapters.runtime.activity``), so ``evo status`` can say what is in progress; the
handler's own reports (probes, training steps) refine it. It is advisory output: no handler
reads it.

The runner (``adapters.runtime.runner``) is this loop with waiting, signals and telling;
``evo train`` and ``evo evaluate`` are ``perform_due`` over their action types.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.reactions import (
    Action,
    CompleteBurnIn,
    CompleteShadow,
    ConcludeWindow,
    EvaluateBaseline,
    EvaluateCandidate,
    FreezeCandidate,
    RankCandidates,
    SelfApprove,
    SpawnCandidates,
    StartShadow,
    TrainCandidate,
    reactions,
)
from evo_core.state import State
from ledger.record import GENESIS_PREV

if TYPE_CHECKING:
    from adapters.runtime.app import App
    from evo_core.config import EvoConfig


@dataclass
class Turn:
    """What a handler works with besides its actions."""

    app: App
    config: EvoConfig
    say: Callable[[str], None] = lambda _line: None  # one line per record appended (evo train/evaluate)
    progress: bool = False  # per-candidate progress bars while training
    worker: Callable[[bytes, Any], None] | None = None  # the training worker (the runner's dies with it)
    follow: Callable[[], None] | None = None  # tell the records appended so far (the runner)


Handler = Callable[[Turn, Sequence[Action]], None]


def still_due(app: App, action: Action) -> bool:
    return action in reactions(app.state())


# ---------------------------------------------------------------- the handlers


def spawn(turn: Turn, actions: Sequence[Action]) -> None:
    turn.app.execute(cmd.SpawnCandidates(config=turn.config))


def train(turn: Turn, actions: Sequence[Action]) -> None:
    """Every due candidate at once, in the pool; progress bars when asked for."""
    from adapters.training import students as training
    from adapters.training.progress import ProgressBoard

    ids = [a.candidate for a in actions if isinstance(a, TrainCandidate)]
    board = ProgressBoard(ids) if turn.progress and ids else None
    started: list[str] = []

    def progress(candidate: str, p: dict[str, Any]) -> None:
        if not started and turn.follow is not None:  # the TrainingStarted records are in: tell them first
            started.append(candidate)
            turn.follow()
        if board is not None:
            board.update(candidate, p)

    def done(result: Any) -> None:
        if board is not None:
            board.done(result)
        if turn.follow is not None:
            turn.follow()

    training.train_window(turn.app, turn.config, ids, on_progress=progress, on_done=done, target=turn.worker)


def _each(module: str, name: str) -> Handler:
    """The handler of a one-at-a-time action: ``module.name(app, config, action)``, imported when
    first performed (the heartbeat and the rollout never load torch or llama.cpp)."""

    def handler(turn: Turn, actions: Sequence[Action]) -> None:
        import importlib

        getattr(importlib.import_module(module), name)(turn.app, turn.config, actions[0])

    handler.__name__ = handler.__qualname__ = f"{module}.{name}"
    return handler


EVALUATION = "adapters.evaluation.steps"
ROLLOUT = "adapters.rollout"

HANDLERS: dict[type[Action], Handler] = {
    SpawnCandidates: spawn,
    TrainCandidate: train,
    EvaluateBaseline: _each(EVALUATION, "evaluate_baseline"),
    EvaluateCandidate: _each(EVALUATION, "evaluate_candidate"),
    RankCandidates: _each(EVALUATION, "rank"),
    FreezeCandidate: _each(EVALUATION, "freeze_candidate"),
    ConcludeWindow: _each(EVALUATION, "conclude"),
    SelfApprove: _each(ROLLOUT, "self_approve"),
    StartShadow: _each(ROLLOUT, "start_shadow"),
    CompleteShadow: _each(ROLLOUT, "complete_shadow"),
    CompleteBurnIn: _each(ROLLOUT, "complete_burn_in"),
}


# ---------------------------------------------------------------- performing


def group(due: Sequence[Action]) -> list[Action]:
    """What one turn performs: all the due training at once, else the first due action."""
    training: list[Action] = [a for a in due if isinstance(a, TrainCandidate)]
    return training or [due[0]]


# what the activity file says while a handler runs: (step, phrase); the phrase is formatted
# with the first action's fields and ``n``, the group's size
STEPS: dict[type[Action], tuple[str, str]] = {
    SpawnCandidates: ("spawn", "planning window {window}'s candidates"),
    TrainCandidate: ("train", "training {n} candidate(s)"),
    EvaluateBaseline: ("evaluate", "evaluating HEAD {generation} (window {window}'s baseline)"),
    EvaluateCandidate: ("evaluate", "evaluating candidate {candidate}"),
    RankCandidates: ("rank", "ranking window {window}'s candidates"),
    FreezeCandidate: ("freeze", "freezing candidate {candidate} into the archive"),
    ConcludeWindow: ("conclude", "concluding window {window}"),
    SelfApprove: ("approve", "approving proposal {proposal_hash} (autonomy)"),
    StartShadow: ("shadow", "starting the shadow of {generation}"),
    CompleteShadow: ("shadow", "judging the shadow of {generation}"),
    CompleteBurnIn: ("burn-in", "judging the burn-in of {generation}"),
}


ECHOED = {"evaluate"}  # steps whose progress goes to stderr too when the turn shows progress (training: its board)


def describe_step(actions: Sequence[Action]) -> tuple[str, str]:
    """``(step, phrase)`` of a group for the activity file (an action not in ``STEPS``, like the
    runner's shadow replay: its type in words and its key, ``replay shadow Luna-G001-a-c2500``)."""
    import re

    first = actions[0]
    fields = msgspec.structs.asdict(first)
    known = STEPS.get(type(first))
    if known is None:
        words = re.sub(r"(?<!^)(?=[A-Z])", " ", type(first).__name__).lower()
        key = " ".join(str(v) for v in list(fields.values())[:1])
        return words.replace(" ", "-"), f"{words} {key}".strip()
    step, phrase = known
    return step, phrase.format(n=len(actions), **fields)


def perform(turn: Turn, actions: Sequence[Action], handlers: Mapping[type[Action], Handler] = HANDLERS) -> None:
    """Perform one group through its handler, its step in the activity file while it runs; the
    projection files are rebuilt once, after it."""
    from adapters.runtime import activity

    handler = handlers.get(type(actions[0]))
    if handler is None:  # pragma: no cover - a new action without its handler
        raise NotImplementedError(f"no handler performs {type(actions[0]).__name__}")
    step, what = describe_step(actions)
    subject = str(next(iter(msgspec.structs.astuple(actions[0])), ""))
    echo = activity.StderrProgress() if turn.progress and step in ECHOED else None
    with turn.app.deferred(), activity.step(turn.app.ws.home, step, what, subject=subject, echo=echo):
        handler(turn, actions)


def perform_due(
    turn: Turn, kinds: tuple[type[Action], ...], handlers: Mapping[type[Action], Handler] = HANDLERS
) -> State:
    """Perform the due actions of these types, turn after turn, until none is due; ``turn.say``
    gets a line per record. Returns the state after the last one."""
    from projections.summary import describe

    app = turn.app
    loaded = app.store.load()
    with app.deferred():
        while True:
            due = [a for a in reactions(loaded.state) if isinstance(a, kinds)]
            if not due:
                return loaded.state
            perform(turn, group(due), handlers)
            seen, offset = loaded.checkpoint, loaded.offset
            loaded = app.store.load()
            for rec in app.store.ledger.records(seen.seq + 1, offset, prev=seen.hash or GENESIS_PREV):
                if rec.seq > loaded.checkpoint.seq:
                    break
                if not isinstance(rec.event, ev.Heartbeat):
                    turn.say(describe(rec.event))
