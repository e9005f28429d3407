"""``evo mlflow-sync``: mirror the ledger into an MLflow tracking store. Parse, call, print.

Only reads the ledger (nothing is appended); writes only the store
(``adapters.audit.mlflow_mirror``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from adapters.cli.common import open_app, out, out_json


def add_command(add: Callable[..., argparse.ArgumentParser]) -> None:
    sp = add(
        "mlflow-sync", cmd_mlflow_sync,
        "mirror the ledger into an MLflow tracking store: windows and candidates as runs, HEAD's "
        "generations as registered model versions (alias 'head'); idempotent",
    )
    sp.add_argument(
        "--tracking-uri", metavar="URI",
        help="any MLflow tracking URI (default: sqlite:///<home>/mlflow/mlflow.db, made on first use)",
    )
    sp.add_argument("--experiment", default="evo", metavar="NAME", help="the experiment the runs go in (default: evo)")
    sp.add_argument(
        "--model-name", metavar="NAME", help="the registered model of the generations (default: the agent's name)"
    )


def cmd_mlflow_sync(args: argparse.Namespace) -> int:
    from adapters.audit.mlflow_mirror import sync
    from adapters.runtime.history import ledger_id

    with open_app(args) as app:
        model = args.model_name or app.ws.heartbeat_settings().agent_name
        report = sync(
            app.ws, app.store.ledger.records(), app.store.fold.evolve, ledger_id(app.store.ledger),
            tracking_uri=args.tracking_uri, experiment=args.experiment, model=model,
        )
    for line in report.conflicts:
        print(f"evo: note: {line}", file=sys.stderr)
    if args.json:
        out_json(report)
        return 0
    out(_summary(report))
    return 0


def _summary(r: Any) -> str:
    what = f"{r.windows} windows, {r.candidates} candidates, {r.versions} model versions"
    head = f"; {r.model}@head = version {r.head_version} ({r.head})" if r.head_version else ""
    if not r.changed:
        return f"{r.tracking_uri}: up to date ({what}{head})"
    return (
        f"{r.tracking_uri}: experiment {r.experiment}: {r.runs_created} runs created, {r.runs_updated} updated, "
        f"{r.points_logged} metric points; {r.versions_created} model versions created, "
        f"{r.versions_updated} updated ({what}{head})"
    )
