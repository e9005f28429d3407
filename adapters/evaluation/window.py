"""Evaluate, rank, freeze and conclude the open window (spec steps 4 EVAL to 7 PROPOSE).

It follows the core's ``reactions`` and performs each due action through an adapter, ledger
first, one action at a time, so a crash leaves exactly what the ledger says and the next run
does the rest:

- EvaluateBaseline: HEAD's own metrics on this window's probes (against itself: tone drift 0);
- EvaluateCandidate: a trained candidate's metrics (tone drift against HEAD); the core's pure
  gates decide, the adapter only measures;
- RankCandidates, then FreezeCandidate for every candidate, pass or fail (the archive folder and
  its hash go into ``CandidateFrozen``);
- ConcludeWindow: the core drafts the proposal (best passing candidate that beats HEAD), the
  shell hashes it (blake3 of its canonical JSON) and appends ``Proposed``, or ``NoPromotion`` with
  the reason.

Probes: a window's probe set is fixed once, in ``data/probes/window-<n>.json``, from the
operator's ``data/probes.json`` or, in a demo workspace, built from the demo world for the
window's eras; it is copied into every candidate's archive (``probes.json``, hashed in
hashes.csv), so the numbers can always be traced to the questions.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from adapters.app import App, proposal_hash
from adapters.evaluation.probes import ProbeSet, build_demo_probes, encode_probes, read_probes
from adapters.evaluation.runner import evaluate
from adapters.serving.generations import ServingError, gguf_path
from adapters.training.window import work_dir
from adapters.workspace import WorkspaceError, write_atomic
from evo_core import commands as cmd
from evo_core.reactions import (
    ConcludeWindow,
    EvaluateBaseline,
    EvaluateCandidate,
    FreezeCandidate,
    RankCandidates,
    reactions,
)
from evo_core.config import EvoConfig
from evo_core.errors import NothingPending
from evo_core.events import GenerationRegistered, Metrics
from evo_core.state import Phase, State, Window
from evo_core.window import draft_proposal
from projections.summary import describe

EVALUATION_ACTIONS = (EvaluateBaseline, EvaluateCandidate, RankCandidates, FreezeCandidate, ConcludeWindow)


def _is_demo(app: App) -> bool:
    for rec in app.store.ledger.records():
        if isinstance(rec.event, GenerationRegistered):
            return rec.event.source == "demo"
    return False


def window_probes(app: App, window: Window) -> tuple[ProbeSet, Path]:
    """The window's fixed probe set (made once, then read)."""
    path = app.ws.data / "probes" / f"window-{window.number}.json"
    if path.is_file():
        import msgspec

        return msgspec.json.decode(path.read_bytes(), type=ProbeSet), path
    if (app.ws.data / "probes.json").is_file():
        probes = read_probes(app.ws.home)
    elif _is_demo(app):
        probes = build_demo_probes(window.cycle, since_cycle=window.since_cycle)
    else:
        raise WorkspaceError(
            f"no probe set: write {app.ws.data / 'probes.json'} (recall, generalize, tone, laws; see README)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, encode_probes(probes))
    return probes, path


def _gguf(app: App, generation: str) -> Path:
    path = gguf_path(app.ws, generation)
    if path is None:
        raise ServingError(f"{generation} has no model.gguf to evaluate (run `evo export {generation}`)")
    return path


def _history(state: State) -> list[tuple[str, Metrics]]:
    """Metrics of the generations that were HEAD, oldest first (the archive's plot)."""
    out = []
    for name in state.promoted:
        cand = state.candidates.get(name)
        if cand is not None and cand.metrics is not None:
            out.append((name, cand.metrics))
    return out


def _ready(state: State) -> None:
    """Evaluation starts once training is over: nothing but evaluation actions may be due."""
    others = [a for a in reactions(state) if not isinstance(a, EVALUATION_ACTIONS)]
    if others:
        assert state.window is not None
        names = ", ".join(sorted({type(a).__name__ for a in others}))
        raise NothingPending(f"window {state.window.number} is not ready to evaluate: due first: {names} (evo train)")


def _evaluate_window(
    app: App, config: EvoConfig, *, say: Callable[[str], None] = lambda _: None
) -> State:
    """Do every evaluation-phase action that is due; returns the state after the last one."""
    from adapters.freeze import freeze
    from adapters.freeze.archive import reclaim

    state = app.state()
    if state.phase is not Phase.WINDOW or state.window is None:
        raise NothingPending(f"no evolution window is open (phase {state.phase.value})")
    window = state.window
    _ready(state)
    probes, probes_path = window_probes(app, window)
    head_gguf = _gguf(app, window.head)
    while True:
        due = [a for a in reactions(state) if isinstance(a, EVALUATION_ACTIONS)]
        if not due:
            return state
        action = due[0]
        command: cmd.Command
        if isinstance(action, EvaluateBaseline):
            metrics = evaluate(head_gguf, probes, reference_gguf=head_gguf)
            command = cmd.RecordBaseline(metrics=metrics, config=config)
        elif isinstance(action, EvaluateCandidate):
            metrics = evaluate(_gguf(app, action.candidate), probes, reference_gguf=head_gguf)
            command = cmd.RecordEvaluation(candidate=action.candidate, metrics=metrics, config=config)
        elif isinstance(action, RankCandidates):
            command = cmd.Rank()
        elif isinstance(action, FreezeCandidate):
            frozen = reclaim(app.ws, action.candidate)  # a freeze that died before its record
            if frozen is None:
                work = work_dir(app.ws, action.candidate)
                work.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(probes_path, work / "probes.json")
                frozen = freeze(
                    app.ws,
                    state.candidates[action.candidate],
                    window=state.window,
                    head_metrics=window.baseline,
                    work_dir=work,
                    history=_history(state),
                )
            command = cmd.Freeze(
                candidate=action.candidate,
                archive=frozen.archive,
                archive_hash=frozen.archive_hash,
                model_hash=frozen.model_hash,
                manifest_hash=frozen.manifest_hash,
            )
        else:
            proposal, _reason = draft_proposal(state)
            command = cmd.Propose(proposal=proposal, proposal_hash=proposal_hash(proposal) if proposal else "")
        outcome = app.execute(command)
        state = outcome.state
        window = state.window or window
        for event in outcome.events:
            say(describe(event))


def evaluate_window(
    app: App, config: EvoConfig, *, say: Callable[[str], None] = lambda _: None
) -> State:
    """Do every evaluation-phase action that is due; returns the state after the last one. The
    projection files are rebuilt once, at the end."""
    with app.deferred():
        return _evaluate_window(app, config, say=say)
