"""The ledger mirrored into an MLflow tracking store (``evo mlflow-sync``).

Theory of operation. The ledger is the truth; the store is a view rebuilt from it, so a sync
only ever brings the store up to what ``projections.tracking`` says the ledger holds:

- runs are found again by two tags, ``evo.ledger_id`` (the hash of record 0: several
  workspaces may share one store) and ``evo.key`` (``window:3``, ``candidate:<name>``); a run
  that is missing is created (its start time is the ledger's), one that exists gets only what
  it lacks: params it has not logged (MLflow keeps a param forever: a different value is
  reported, never written), tags that differ, metric points (step, value, time) not in its
  history, its status and end time when they moved;
- the model registry holds one version per generation that was ever HEAD, found again by its
  ``evo.generation`` tag, created in the order the generations became HEAD; the alias
  ``head`` follows HEAD, across cutovers and rollbacks;
- artifacts are referenced, never copied: a version's source is the archive folder, and the
  archive's name and hashes are tags (the ledger's ``archive_hash`` checks the bytes).

So a second sync of the same ledger writes nothing, and one after more records writes only
those records' consequences. The default store is SQLite under ``<home>/mlflow/`` (MLflow's
file store is in maintenance mode; its SQL store also holds the registry); any tracking URI
may be given. MLflow's telemetry is switched off and its HTTP retries kept short (an
unreachable server is one line, not minutes of back-off); nothing else is fetched.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import msgspec

from adapters.freeze.archive import resolve_archive
from adapters.runtime.workspace import Workspace
from evo_core.errors import EnvironmentFault
from evo_core.events import Event
from evo_core.state import State
from projections.records import LedgerRecord
from projections.tracking import HEAD_ALIAS, KEY_TAG, LEDGER_TAG, RunPlan, VersionPlan, runs, tracking, versions

DEFAULT_EXPERIMENT = "evo"
GENERATION_TAG = "evo.generation"
_BATCH = 100  # MLflow's limit of params (and tags) per log_batch; metrics allow 1000


class TrackingError(EnvironmentFault):
    """The tracking store cannot be reached or opened, or refused what evo wrote (exit 1)."""


class SyncReport(msgspec.Struct, kw_only=True):
    tracking_uri: str
    experiment: str
    experiment_id: str = ""
    model: str = ""
    windows: int = 0
    candidates: int = 0
    versions: int = 0
    head: str | None = None
    head_version: str | None = None
    runs_created: int = 0
    runs_updated: int = 0
    points_logged: int = 0
    versions_created: int = 0
    versions_updated: int = 0
    alias_moved: bool = False
    conflicts: list[str] = []

    @property
    def changed(self) -> bool:
        return bool(self.runs_created or self.runs_updated or self.versions_created or self.versions_updated
                    or self.alias_moved)


def millis(at: str) -> int | None:
    """A record's ``at`` (UTC ISO) in milliseconds since the epoch; None when it has none."""
    if not at:
        return None
    try:
        return int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def default_uri(ws: Workspace) -> str:
    return f"sqlite:///{(ws.home / 'mlflow' / 'mlflow.db').absolute()}"


def _client_class() -> Any:
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"  # never call home
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    try:
        from mlflow import MlflowClient
    except ImportError as exc:
        raise TrackingError(f"MLflow is not installed ({exc.name}): pip install 'evo[track]'") from None
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return MlflowClient


def _errors() -> tuple[type[BaseException], ...]:
    from mlflow.exceptions import MlflowException

    # ImportError: a store whose driver is missing (the SQL store without sqlalchemy)
    kinds: list[type[BaseException]] = [MlflowException, OSError, ValueError, ImportError]
    try:
        from sqlalchemy.exc import SQLAlchemyError

        kinds.append(SQLAlchemyError)
    except ImportError:
        pass
    try:
        from requests import RequestException

        kinds.append(RequestException)
    except ImportError:
        pass
    return tuple(kinds)


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(text).strip().splitlines()[0][:300]


def sync(
    ws: Workspace,
    records: Iterable[LedgerRecord],
    step: Callable[[State, Event], State],
    ledger_id: str,
    *,
    tracking_uri: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    model: str,
) -> SyncReport:
    """Bring the store at ``tracking_uri`` (default: SQLite under the workspace) up to the ledger."""
    uri = tracking_uri or default_uri(ws)
    local = None
    if tracking_uri is None:
        (ws.home / "mlflow").mkdir(exist_ok=True)
        local = ws.home / "mlflow" / "artifacts"
    elif uri.startswith("sqlite:///"):
        local = Path(uri[len("sqlite:///"):]).parent / "mlartifacts"
    t = tracking(records, step)
    files = {name: _archive_files(ws, tc.candidate.archive) for name, tc in t.candidates.items()}
    report = SyncReport(tracking_uri=uri, experiment=experiment, model=model, windows=len(t.windows),
                        candidates=len(t.candidates), head=t.head)
    make_client = _client_class()  # before the try: an evo without MLflow says how to add it
    try:
        client = make_client(tracking_uri=uri, registry_uri=uri)
        report.experiment_id = _experiment(client, experiment, local)
        ids = _sync_runs(client, report, ledger_id, runs(t, files))
        _sync_registry(client, report, ws, ledger_id, versions(t), ids, t.head)
    except _errors() as exc:
        raise TrackingError(f"tracking store {uri}: {_one_line(exc)}") from None
    return report


def _archive_files(ws: Workspace, archive: str) -> dict[str, Any]:
    if not archive:
        return {}
    folder = resolve_archive(ws, archive)
    out = {}
    for key, name in (("training", "training.json"), ("train_args", "train_args.json")):
        try:
            value = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(value, dict):
            out[key] = value
    return out


def _experiment(client: Any, name: str, artifacts: Path | None) -> str:
    found = client.get_experiment_by_name(name)
    if found is None:
        location = artifacts.absolute().as_uri() if artifacts is not None else None
        return str(client.create_experiment(name, artifact_location=location))
    if found.lifecycle_stage != "active":
        raise TrackingError(f"experiment {name!r} is deleted in this store: restore it or choose another with --experiment")
    return str(found.experiment_id)


# ---------------------------------------------------------------- runs


def _existing_runs(client: Any, experiment_id: str, ledger_id: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string=f"tags.`{LEDGER_TAG}` = '{ledger_id}'", max_results=1000,
            page_token=token,
        )
        for run in page:
            found.setdefault(run.data.tags.get(KEY_TAG, ""), run)
        token = page.token
        if not token:
            return found


def _sync_runs(client: Any, report: SyncReport, ledger_id: str, plans: list[RunPlan]) -> dict[str, str]:
    from mlflow.entities import Metric, Param, RunTag

    existing = _existing_runs(client, report.experiment_id, ledger_id)
    ids: dict[str, str] = {}
    for plan in plans:
        tags = {**plan.tags, LEDGER_TAG: ledger_id, KEY_TAG: plan.key}
        if plan.parent is not None and plan.parent in ids:
            tags["mlflow.parentRunId"] = ids[plan.parent]
        run = existing.get(plan.key)
        if run is None:
            run = client.create_run(
                report.experiment_id, start_time=millis(plan.start_at), tags=tags, run_name=plan.name
            )
            report.runs_created += 1
            had_params: dict[str, str] = {}
            had_tags: dict[str, str] = dict(tags)
            had_metrics: set[str] = set()
            fresh = True
        else:
            had_params, had_tags, had_metrics = run.data.params, run.data.tags, set(run.data.metrics)
            fresh = False
        run_id = run.info.run_id
        ids[plan.key] = run_id
        params = []
        for key, value in plan.params.items():
            if key not in had_params:
                params.append(Param(key, value))
            elif had_params[key] != value:
                report.conflicts.append(f"{plan.name}: param {key} is {had_params[key]!r} in the store, {value!r} in the ledger")
        new_tags = [RunTag(k, v) for k, v in tags.items() if had_tags.get(k) != v]
        points = []
        for key, wanted in plan.metrics.items():
            have: set[tuple[int, float, int]] = set()
            if key in had_metrics:
                have = {(m.step, m.value, m.timestamp) for m in client.get_metric_history(run_id, key)}
            for step, number, at in wanted:
                ms = millis(at) or 0
                if (step, number, ms) not in have:
                    points.append(Metric(key, number, ms, step))
        for i in range(0, len(params), _BATCH):
            client.log_batch(run_id, params=params[i:i + _BATCH])
        for i in range(0, len(new_tags), _BATCH):
            client.log_batch(run_id, tags=new_tags[i:i + _BATCH])
        for i in range(0, len(points), 1000):
            client.log_batch(run_id, metrics=points[i:i + 1000])
        report.points_logged += len(points)
        moved = _sync_status(client, run, plan)
        if not fresh and (params or new_tags or points or moved):
            report.runs_updated += 1
    return ids


def _sync_status(client: Any, run: Any, plan: RunPlan) -> bool:
    info = run.info
    if plan.status == "RUNNING":
        if info.status != "RUNNING":
            client.update_run(info.run_id, status="RUNNING")
            return True
        return False
    end = millis(plan.end_at)
    if info.status != plan.status or (end is not None and info.end_time != end):
        client.set_terminated(info.run_id, status=plan.status, end_time=end)
        return True
    return False


# ---------------------------------------------------------------- registry


def _registered_model(client: Any, name: str, ledger_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
            raise
        return client.create_registered_model(
            name, tags={LEDGER_TAG: ledger_id}, description=f"The generations of {name} that were HEAD (evo)."
        )
    owner = model.tags.get(LEDGER_TAG)
    if owner != ledger_id:
        raise TrackingError(
            f"registered model {name!r} in this store mirrors another ledger ({owner or 'not evo'}): "
            "choose another name with --model-name"
        )
    return model


def _sync_registry(
    client: Any, report: SyncReport, ws: Workspace, ledger_id: str, plans: list[VersionPlan],
    run_ids: Mapping[str, str], head: str | None,
) -> None:
    if not plans:
        return
    model = _registered_model(client, report.model, ledger_id)
    found: dict[str, Any] = {}
    for v in client.search_model_versions(f"name='{report.model}'"):
        found.setdefault(v.tags.get(GENERATION_TAG, ""), v)
    numbers: dict[str, str] = {}
    for plan in plans:
        tags = {**plan.tags, LEDGER_TAG: ledger_id}
        version = found.get(plan.generation)
        if version is None:
            source = resolve_archive(ws, plan.archive).absolute().as_uri() if plan.archive else ws.models.absolute().as_uri()
            version = client.create_model_version(
                report.model, source=source, run_id=run_ids.get(plan.run) if plan.run else None,
                tags=tags, description=plan.description,
            )
            report.versions_created += 1
        else:
            changed = False
            for key, value in tags.items():
                if version.tags.get(key) != value:
                    client.set_model_version_tag(report.model, version.version, key, value)
                    changed = True
            if (version.description or "") != plan.description:
                client.update_model_version(report.model, version.version, description=plan.description)
                changed = True
            report.versions_updated += int(changed)
        numbers[plan.generation] = str(version.version)
    report.versions = len(plans)
    wanted = numbers.get(head) if head is not None else None
    report.head_version = wanted
    current = model.aliases.get(HEAD_ALIAS) if isinstance(model.aliases, dict) else None
    if wanted is not None and str(current) != wanted:
        client.set_registered_model_alias(report.model, HEAD_ALIAS, wanted)
        report.alias_moved = True
    elif wanted is None and current is not None:
        client.delete_registered_model_alias(report.model, HEAD_ALIAS)
        report.alias_moved = True
