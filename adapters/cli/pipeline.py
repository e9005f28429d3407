"""The pipeline's commands: ``evo train``, ``evaluate``, ``export`` and ``ask``. Parse, call,
print (``adapters.cli.evo`` registers them)."""

from __future__ import annotations

import argparse
import os
import sys

import msgspec

from adapters.cli.common import EXIT_ERROR, open_app, out, out_json
from adapters.runtime.workspace import WorkspaceError, resolve_home


def cmd_train(args: argparse.Namespace) -> int:
    from adapters.runtime.perform import Turn, perform, still_due
    from adapters.training.progress import ProgressBoard
    from adapters.training.students import train_window
    from evo_core.errors import NothingPending
    from evo_core.reactions import SpawnCandidates, TrainCandidate, reactions
    from evo_core.state import Phase

    with open_app(args) as app:
        config = app.ws.load_config()
        state = app.state()
        if state.phase is not Phase.WINDOW or state.window is None:
            raise NothingPending(f"no evolution window is open (phase {state.phase.value}); heartbeats open one")
        spawn = SpawnCandidates(window=state.window.number)
        if still_due(app, spawn):
            perform(Turn(app=app, config=config), [spawn])
        todo = [a.candidate for a in reactions(app.state()) if isinstance(a, TrainCandidate)]
        if not todo:
            out(f"window {state.window.number}: no candidate is due for training")
            return 0
        board = None if args.json else ProgressBoard(todo)
        results = train_window(
            app,
            config,
            todo,
            on_progress=board.update if board else None,
            on_done=board.done if board else None,
        )
    if args.json:
        out_json(list(results.values()))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    from adapters.agent import check_prompt
    from adapters.serving.generations import find_recorded
    from adapters.serving.router import Router

    with Router(resolve_home(args.home), max_tokens=args.max_tokens) as router:
        # a generation the verified ledger records, its bytes checked when it loads
        name = find_recorded(router.state(), args.generation) if args.generation else None
        check_prompt(router.model(name) if name is not None else router.serve_head(), args.prompt)
        answer = router.answer(args.prompt, generation=name)
    if args.json:
        out_json(
            {
                "generation": answer.generation,
                "text": answer.text,
                "latency_s": answer.latency_s,
                "tokens": answer.tokens,
            }
        )
    else:
        out(answer.text)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from adapters.runtime.workspace import Workspace
    from evo_core.names import by_prefix

    ws = Workspace(resolve_home(args.home))
    ws.require()
    names = sorted(p.name for p in ws.archive.iterdir() if p.is_dir() and not p.name.startswith("."))
    matches = by_prefix(args.generation, names)
    if len(matches) != 1:
        why = "no archived generation" if not matches else f"{len(matches)} archived generations match"
        raise WorkspaceError(f"{why} {args.generation!r} in {ws.archive}")
    from adapters.serving.gguf_export import export_generation

    folder = ws.archive / matches[0]
    if not os.access(folder, os.W_OK):
        raise WorkspaceError(
            f"{folder.name} is archived read-only: its model.gguf is the one whose hash the ledger recorded, "
            "and nothing is written into it (export a copy of its weights/ elsewhere)"
        )
    if not (folder / "weights" / "config.json").is_file():
        raise WorkspaceError(f"{folder.name}: no weights to export ({folder / 'weights'} holds no model)")
    from adapters.runtime import activity

    what = f"exporting {folder.name} ({args.dtype}) and checking parity"
    with activity.step(ws.home, "export", what, subject=folder.name, echo=activity.StderrProgress()) as exporting:
        record = export_generation(folder, dtype=args.dtype, progress=exporting)
    if args.json:
        out_json({"generation": folder.name, "path": str(folder / record.gguf), **msgspec.structs.asdict(record)})
    else:
        out(f"{folder / record.gguf}: {record.dtype}, {record.bytes:,} bytes, blake3 {record.blake3[:16]}")
        out(record.parity.summary())
        if record.quantized is not None:
            out(record.quantized.summary())
    if not record.parity.passed:
        first = record.parity.mismatches[0][:160] if record.parity.mismatches else ""
        print(f"evo: error: {folder.name}: FAIL - export parity ({first})", file=sys.stderr)
        return EXIT_ERROR
    if record.quantized is not None and not record.quantized.passed:
        print(f"evo: error: {folder.name}: FAIL - {record.quantized.summary()}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from adapters.evaluation.steps import evaluate_window

    with open_app(args) as app:
        config = app.ws.load_config()
        state = evaluate_window(app, config, say=(lambda line: None) if args.json else out)
        if args.json:
            from projections.status import status_view

            out_json(status_view(state, period=config.evo_period_cycles, seq=None))
    return 0
