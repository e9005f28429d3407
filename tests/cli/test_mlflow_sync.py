"""`evo mlflow-sync`: the ledger mirrored into a real MLflow store (SQLite under the workspace),
read back with MLflow's own client: runs, params, metric histories, registered versions and the
``head`` alias; a second sync writes nothing, a rollback moves the alias."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Evo, LedgerDriver
from tests.core.helpers import GENESIS

pytest.importorskip("mlflow")

CURVE = [[1, 3.5], [4, 2.25], [8, 1.75], [10, 1.5]]


def client(home: Path) -> Any:
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow' / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def store(home: Path) -> dict[str, Any]:
    """Everything the store holds for evo, keyed by evo's names (never MLflow's ids), with the
    run a version or a nested run points at named by its key."""
    c = client(home)
    exp = c.get_experiment_by_name("evo")
    found = c.search_runs([exp.experiment_id], max_results=1000)
    keys = {r.info.run_id: r.data.tags["evo.key"] for r in found}
    runs = {}
    for r in found:
        key = r.data.tags["evo.key"]
        assert key not in runs, f"{key} mirrored twice"
        tags = dict(r.data.tags)
        parent = tags.pop("mlflow.parentRunId", None)
        runs[key] = {
            "name": r.info.run_name, "status": r.info.status, "start": r.info.start_time, "end": r.info.end_time,
            "parent": keys.get(parent) if parent else None, "params": r.data.params, "tags": tags,
            "metrics": {
                k: [(m.step, m.value, m.timestamp) for m in c.get_metric_history(r.info.run_id, k)]
                for k in r.data.metrics
            },
        }
    versions = {
        v.tags["evo.generation"]: {
            "version": v.version, "source": v.source, "run": keys.get(v.run_id) if v.run_id else None,
            "tags": v.tags, "description": v.description,
        }
        for v in c.search_model_versions("name='Luna'")
    }
    return {"runs": runs, "versions": versions, "aliases": dict(c.get_registered_model("Luna").aliases)}


def sync(evo: Evo) -> dict[str, Any]:
    r = evo("mlflow-sync", "--json")
    assert r.code == 0, r.err
    report: dict[str, Any] = json.loads(r.out)
    return report


def test_the_ledger_mirrored_twice_is_the_same_store_and_the_alias_follows_head(
    evo: Evo, driver: LedgerDriver
) -> None:
    g1 = driver.promote()
    trained = g1  # its archive (named by the ledger) holds the loss curve and the settings
    folder = evo.home / "models" / "archive" / trained
    folder.mkdir(parents=True)
    (folder / "training.json").write_text(json.dumps({"steps": 10, "loss_curve": CURVE}))
    (folder / "train_args.json").write_text(json.dumps(
        {"candidate": trained, "seed": 1, "learning_rate": 0.0002, "lora": {"r": 8, "alpha": 16, "targets": ["q_proj"]},
         "distill": {"alpha": 0.5, "temperature": 2.0}, "teacher_cache": {"path": "/somewhere/abs", "top_k": 32}}
    ))
    before = evo.ledger_bytes

    report = sync(evo)
    assert report["runs_created"] == 4 and report["versions_created"] == 2 and report["head"] == g1
    assert evo.ledger_bytes == before  # only read
    once = store(evo.home)
    runs = once["runs"]
    assert set(runs) == {"window:1"} | {f"candidate:{c}" for c in driver.candidates()}
    window = runs["window:1"]
    assert window["status"] == "FINISHED" and window["params"]["head"] == GENESIS
    assert window["tags"]["evo.outcome"] == f"proposed {g1}" and window["tags"]["evo.promoted"] == g1
    assert {"baseline.recall", "baseline.score"} <= set(window["metrics"])
    run = runs[f"candidate:{g1}"]
    assert run["parent"] == "window:1" and run["name"] == g1 and run["status"] == "FINISHED"
    assert run["params"]["strategy"] and run["params"]["budget.max_steps"] and run["params"]["lora.r"] == "8"
    assert run["params"]["lora.targets"] == '["q_proj"]' and run["params"]["teacher_cache.top_k"] == "32"
    assert not any("/somewhere" in v for v in run["params"].values())  # machine paths are not params
    assert [(s, v) for s, v, _ in run["metrics"]["loss"]] == [tuple(p) for p in CURVE]
    assert run["metrics"]["recall"][0][1] == pytest.approx(0.85)
    assert run["metrics"]["budget.steps"][0][1] == 10 and run["metrics"]["budget.seconds"][0][1] == 60
    assert run["tags"]["evo.gate.recall"] == "pass" and run["metrics"]["gate.recall.passed"][0][1] == 1.0
    assert run["tags"]["evo.archive"] == f"models/archive/{g1}" and run["tags"]["evo.archive_hash"]
    failed = next(v for k, v in runs.items() if v["status"] == "FAILED")
    assert "loss" not in failed["metrics"] and failed["tags"]["evo.status"].startswith("FAIL")
    other = next(v for k, v in runs.items() if k.startswith("candidate:") and k != f"candidate:{g1}"
                 and v["status"] == "FINISHED")
    assert [s for s, _, _ in other["metrics"]["loss"]] == [1, 10]  # the ledger's two points: no curve archived
    assert once["versions"][GENESIS]["version"] == 1 and once["versions"][g1]["run"] == f"candidate:{g1}"
    assert once["versions"][g1]["source"].endswith(f"/models/archive/{g1}")
    assert once["aliases"] == {"head": 2}

    again = sync(evo)
    assert again["runs_created"] == again["runs_updated"] == again["points_logged"] == 0
    assert again["versions_created"] == again["versions_updated"] == 0 and not again["alias_moved"]
    assert store(evo.home) == once

    g2 = driver.promote()
    assert sync(evo)["versions_created"] == 1
    assert store(evo.home)["aliases"] == {"head": 3}
    driver.rollback()
    assert driver.state.head == g1
    moved = sync(evo)
    assert moved["alias_moved"] and moved["head_version"] == "2" and moved["runs_created"] == 0
    after = store(evo.home)
    assert after["aliases"] == {"head": 2}
    assert after["versions"][g2]["tags"]["evo.revoked"] == "true"
    assert after["runs"]["window:2"]["tags"]["evo.rolled_back"] == "true"
    for key, value in once["runs"].items():  # window 1's runs kept their histories
        assert after["runs"][key]["metrics"] == value["metrics"] and after["runs"][key]["params"] == value["params"]
    assert sync(evo)["alias_moved"] is False and store(evo.home) == after


def test_text_output_says_up_to_date_the_second_time(evo: Evo) -> None:
    first = evo("mlflow-sync")
    assert first.code == 0, first.err
    assert "1 model versions" in first.out and "Luna@head = version 1" in first.out
    assert "up to date" in evo("mlflow-sync").out


def test_an_unreachable_store_or_a_bad_workspace_is_one_line(evo: Evo, tmp_path: Path) -> None:
    # nothing listens on the discard port; an unknown scheme; MLflow's file store (maintenance mode)
    for uri in ("http://127.0.0.1:9", "nope://x", (tmp_path / "runs").as_uri()):
        r = evo("mlflow-sync", "--tracking-uri", uri)
        assert r.code == 1 and r.out == "", (uri, r.out)
        assert r.err.startswith(f"evo: error: tracking store {uri}: ") and len(r.err.splitlines()) == 1, r.err
    missing = Evo(tmp_path / "nowhere", evo.capsys)("mlflow-sync")
    assert missing.code == 1 and len(missing.err.splitlines()) == 1 and "no evo workspace" in missing.err
