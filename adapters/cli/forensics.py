"""The auditor's commands: ``evo explain NAME`` and ``evo report``. Parse, call, print.

Both only read the ledger (nothing is appended) and the archives it names (a frozen
candidate's loss curve); ``report`` writes one HTML file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from adapters.cli.common import open_app, out, out_json
from adapters.runtime.workspace import WorkspaceError
from evo_core.names import by_prefix


def resolve_name(names: list[str], wanted: str) -> str:
    """``wanted`` itself, or the one generation or candidate it is a prefix of."""
    matches = by_prefix(wanted, names)
    if not matches:
        raise WorkspaceError(f"no candidate or generation named {wanted!r} in the ledger (see `evo status`)")
    if len(matches) > 1:
        raise WorkspaceError(f"{wanted!r} is ambiguous: it matches {', '.join(matches)}")
    return matches[0]


def cmd_explain(args: argparse.Namespace) -> int:
    import msgspec

    from adapters.freeze.loss_curve import summary
    from projections.explain import explain, generation_names
    from projections.explain_text import render_explanation

    with open_app(args) as app:
        name = resolve_name(generation_names(app.store.ledger.records()), args.name)
        expl = explain(app.store.ledger.records(), name)
        curve = _archived_curve(app, expl)
    if expl is None:  # the ledger was replaced between the two reads
        raise WorkspaceError(f"no candidate or generation named {name!r} in the ledger (see `evo status`)")
    if args.json:
        out_json({**msgspec.to_builtins(expl), "loss_curve": curve})
    else:
        for line in render_explanation(expl):
            out(line)
            if line.startswith("training: ") and curve:
                out(f"  {summary(curve)}")
    return 0


def _archived_curve(app: Any, expl: Any) -> list[tuple[int, float]]:
    """The training loss curve in a frozen candidate's archive, or before the freeze in its
    work folder ([] when neither has one)."""
    from adapters.freeze.archive import resolve_archive
    from adapters.freeze.loss_curve import read_curve
    from adapters.training.students import work_dir

    if expl is None or expl.kind == "genesis":
        return []
    if expl.frozen is not None:
        return read_curve(resolve_archive(app.ws, expl.frozen.archive))
    return read_curve(work_dir(app.ws, expl.name))


def cmd_report(args: argparse.Namespace) -> int:
    from adapters.audit.report import gather, write_report

    with open_app(args) as app:
        data = gather(app)
        path = write_report(app, Path(args.out) if args.out else None, data=data)
    if args.json:
        out_json({"path": str(path), "checkpoint": data.checkpoint})
    else:
        out(f"{path} (ledger checkpoint {data.checkpoint or 'empty'})")
    return 0
