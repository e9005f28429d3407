"""Evaluate, rank, freeze and conclude the open window (spec steps 4 EVAL to 7 PROPOSE): one
handler per action of the core's ``reactions``, each performing the action it is given (the ids
it needs are in it) and appending its outcome, ledger first, so a crash leaves exactly what the
ledger says and the next turn does the rest:

- ``evaluate_baseline``: HEAD's own metrics on this window's probes (against itself: tone drift 0);
- ``evaluate_candidate``: a trained candidate's metrics (tone drift against HEAD); the core's pure
  gates decide, the adapter only measures;
- ``rank``, then ``freeze_candidate`` for every candidate, pass or fail (the archive folder and
  its hash go into ``CandidateFrozen``);
- ``conclude``: the core drafts the proposal (best passing candidate that beats HEAD), the shell
  hashes it (blake3 of its canonical JSON) and appends ``Proposed``, or ``NoPromotion`` with the
  reason.

The runner performs these through ``adapters.runtime.perform``'s table; ``evo evaluate`` performs the
due evaluation actions one after the other (``evaluate_window``). Each evaluation reports its
probes to the step ``perform`` opened (``adapters.runtime.activity.current()``, the default
``progress`` of ``adapters.evaluation.measure``): on stderr and in the activity file.

Probes: a window's probe set is fixed once, in ``data/probes/window-<n>.json``, from the
operator's ``data/probes.json`` or, in a demo workspace, built from the demo world for the
window's eras; it is copied into every candidate's archive (``probes.json``, hashed in
hashes.csv), so the numbers can always be traced to the questions.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

from adapters.runtime.app import App, proposal_hash
from adapters.evaluation.probe_file import read_probes
from adapters.evaluation.probes import ProbeSet, build_demo_probes, encode_probes
from adapters.evaluation.measure import evaluate
from adapters.serving.generations import ServingError, gguf_path
from adapters.training.students import work_dir
from adapters.runtime.workspace import WorkspaceError, write_atomic
from evo_core import commands as cmd
from evo_core.config import EvoConfig
from evo_core.errors import NothingPending
from evo_core.reactions import (
    ConcludeWindow,
    EvaluateBaseline,
    EvaluateCandidate,
    FreezeCandidate,
    RankCandidates,
    reactions,
)
from evo_core.state import Phase, State, Window
from evo_core.values import Metrics
from evo_core.window import draft_proposal

EVALUATION_ACTIONS = (EvaluateBaseline, EvaluateCandidate, RankCandidates, FreezeCandidate, ConcludeWindow)


def window_probes(app: App, window: Window) -> tuple[ProbeSet, Path]:
    """The window's fixed probe set (made once, then read)."""
    path = app.ws.data / "probes" / f"window-{window.number}.json"
    if path.is_file():
        import msgspec

        return msgspec.json.decode(path.read_bytes(), type=ProbeSet), path
    if (app.ws.data / "probes.json").is_file():
        probes = read_probes(app.ws.home)
    elif app.state().genesis_source == "demo":
        probes = build_demo_probes(window.cycle, since_cycle=window.since_cycle)
    else:
        raise WorkspaceError(
            f"no probe set: write {app.ws.data / 'probes.json'} (`evo probes draft` drafts it from the stored"
            " conversations; review it, then `evo probes validate`; README: Your own workspace)"
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


def _open_window(app: App) -> tuple[State, Window]:
    state = app.state()
    if state.phase is not Phase.WINDOW or state.window is None:
        raise NothingPending(f"no evolution window is open (phase {state.phase.value})")
    return state, state.window


def evaluate_baseline(app: App, config: EvoConfig, action: EvaluateBaseline) -> None:
    _state, window = _open_window(app)
    probes, _path = window_probes(app, window)
    head = _gguf(app, action.generation)
    app.execute(cmd.RecordBaseline(metrics=evaluate(head, probes, reference_gguf=head, laws=config.laws), config=config))


def evaluate_candidate(app: App, config: EvoConfig, action: EvaluateCandidate) -> None:
    _state, window = _open_window(app)
    probes, _path = window_probes(app, window)
    metrics = evaluate(
        _gguf(app, action.candidate), probes, reference_gguf=_gguf(app, window.head), laws=config.laws
    )
    app.execute(cmd.RecordEvaluation(candidate=action.candidate, metrics=metrics, config=config))


def rank(app: App, config: EvoConfig, action: RankCandidates) -> None:
    app.execute(cmd.Rank())


def freeze_candidate(app: App, config: EvoConfig, action: FreezeCandidate) -> None:
    """Archive the candidate (or re-use the archive of a freeze that died before its record)."""
    from adapters.freeze import freeze
    from adapters.freeze.archive import reclaim

    state, window = _open_window(app)
    frozen = reclaim(app.ws, action.candidate)
    if frozen is None:
        _probes, probes_path = window_probes(app, window)
        work = work_dir(app.ws, action.candidate)
        work.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(probes_path, work / "probes.json")
        frozen = freeze(
            app.ws,
            state.candidates[action.candidate],
            window=window,
            head_metrics=window.baseline,
            work_dir=work,
            history=_history(state),
        )
    app.execute(
        cmd.Freeze(
            candidate=action.candidate,
            archive=frozen.archive,
            archive_hash=frozen.archive_hash,
            model_hash=frozen.model_hash,
            manifest_hash=frozen.manifest_hash,
        )
    )
    from adapters.training.generation_weights import retire_work

    retire_work(app.ws, action.candidate)  # the archive holds the GGUF, the cache the weights


def conclude(app: App, config: EvoConfig, action: ConcludeWindow) -> None:
    proposal, _reason = draft_proposal(app.state())
    app.execute(cmd.Propose(proposal=proposal, proposal_hash=proposal_hash(proposal) if proposal else ""))


def evaluate_window(app: App, config: EvoConfig, *, say: Callable[[str], None] = lambda _: None) -> State:
    """``evo evaluate``: perform every due evaluation action, in the order the core gives them,
    once the training is over; ``say`` gets one line per record, stderr each evaluation's
    progress. The projection files are rebuilt once, at the end. Returns the state after the
    last action."""
    from adapters.runtime.perform import Turn, perform_due

    state, window = _open_window(app)
    others = [a for a in reactions(state) if not isinstance(a, EVALUATION_ACTIONS)]
    if others:
        names = ", ".join(sorted({type(a).__name__ for a in others}))
        raise NothingPending(f"window {window.number} is not ready to evaluate: due first: {names} (evo train)")
    window_probes(app, window)  # fixed before the first measurement
    return perform_due(Turn(app=app, config=config, say=say, progress=True), EVALUATION_ACTIONS)
