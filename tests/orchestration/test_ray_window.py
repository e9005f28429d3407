"""A window's candidates on a Ray cluster (``[train] executor = "ray"``): a local Ray started in
the test process (``ray.init(num_cpus=2)``) trains the demo window's three students to the same
results and verdicts as the local pool on the same seeds, records where each ran, turns an
actor killed mid-training into a failed candidate, and a runner killed mid-window and started
again reattaches to the students still training instead of training them twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from adapters.cli import main
from evo_core.config import BudgetConfig, EvoConfig, render_config
from tests.orchestration import test_train_window
from tests.orchestration.test_train_window import CONFIG, window_workspace  # noqa: F401  (fixture)

ray = pytest.importorskip("ray")

# memory per student as Ray reserves it (the budget's peak resident memory): three fit the test cluster
RAY_CONFIG = CONFIG.model_copy(update={
    "train": CONFIG.train.model_copy(update={"executor": "ray"}),
    "budget": BudgetConfig(max_gpu_memory_gb=2.0),
})
LOCAL_CONFIG = CONFIG.model_copy(update={"budget": BudgetConfig(max_gpu_memory_gb=2.0)})


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A local Ray cluster of 2 CPUs; its address for other processes."""
    if ray.is_initialized():
        ray.shutdown()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for s, handler in handlers.items():  # Ray leaves SIGINT ignored in the driver
            signal.signal(s, handler)


def _workspace(window_workspace: Path, at: Path, config: EvoConfig) -> Path:
    shutil.copytree(window_workspace, at, symlinks=True)
    (at / "config.toml").write_text(render_config(config))
    return at


def events(home: Path, kind: str) -> list[dict[str, Any]]:
    return [dict(e) for e in test_train_window.events(home, kind)]


def evo(home: Path, *args: str) -> int:
    return main(["--home", str(home), *args])


def verdicts(home: Path) -> dict[int, tuple[Any, ...]]:
    """Per seed: the training outcome, the losses, the merged weights' hash and every gate."""
    seeds = {e["candidate"]: e["seed"] for e in events(home, "CandidateSpawned")}
    out: dict[int, tuple[Any, ...]] = {}
    for f in events(home, "TrainingFinished"):
        c = str(f["candidate"])
        merge = json.loads((home / "models" / "archive" / c / "adapter" / "evo_merge.json").read_text())
        gates = [(g["candidate"], g["passed"], g["gates"]) for g in events(home, "GateEvaluated") if g["candidate"] == c]
        out[int(seeds[c])] = (f["stats"], merge["tensors"], [(p, gs) for _, p, gs in gates])
    return out


def test_a_window_on_ray_reaches_the_local_pools_results_and_records_where_each_ran(
    cluster: str, window_workspace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = _workspace(window_workspace, tmp_path / "local", LOCAL_CONFIG)
    on_ray = _workspace(window_workspace, tmp_path / "ray", RAY_CONFIG)
    for home in (local, on_ray):
        assert evo(home, "train") == 0
        assert evo(home, "evaluate") == 0
    mine, theirs = verdicts(on_ray), verdicts(local)
    assert len(mine) == 3 and mine == theirs
    node = ray.get_runtime_context().get_node_id()
    for f in events(on_ray, "TrainingFinished"):
        placement = f["placement"]
        assert placement["executor"] == "ray" and placement["node"] == node
        assert placement["cpus"] == pytest.approx(0.66) and placement["memory_gb"] == pytest.approx(2.0)
        args = json.loads((on_ray / "models" / "archive" / str(f["candidate"]) / "train_args.json").read_text())
        assert args["placement"]["node"] == node and args["threads"] == 1
    for f in events(local, "TrainingFinished"):
        assert f["placement"]["executor"] == "local" and f["placement"]["cpus"] == 1.0
    capsys.readouterr()
    assert evo(on_ray, "explain", str(events(on_ray, "TrainingFinished")[0]["candidate"])) == 0
    assert f"trained on: ray node {node[:12]} (" in capsys.readouterr().out
    assert not ray.util.list_named_actors(all_namespaces=True)  # every actor freed once recorded


def test_an_actor_killed_mid_training_becomes_a_failed_candidate(cluster: str, window_workspace: Path,
                                                                 tmp_path: Path) -> None:
    from adapters.runtime.app import App
    from adapters.training import ray_pool
    from adapters.training.students import train_window

    from adapters.runtime.perform import Turn, perform
    from evo_core.reactions import SpawnCandidates

    home = _workspace(window_workspace, tmp_path / "home", RAY_CONFIG)
    victim: list[str] = []

    def progress(candidate: str, p: dict[str, Any]) -> None:
        if not victim and int(p.get("step", 0)) >= 2:
            victim.append(candidate)
            ns = ray_pool.namespace(app.state().ledger_id)
            ray.kill(ray.get_actor(ray_pool.actor_name(candidate), namespace=ns))

    with App(home) as app:
        window = app.state().window
        assert window is not None
        perform(Turn(app=app, config=RAY_CONFIG), [SpawnCandidates(window=window.number)])
        results = train_window(app, RAY_CONFIG, sorted(app.state().candidates), on_progress=progress)
    assert victim, "no training step was reported"
    assert results[victim[0]].status == "failed"
    failed = [e for e in events(home, "TrainingFailed") if e["candidate"] == victim[0]]
    assert len(failed) == 1 and failed[0]["reason"] == "Ray actor died: killed with ray.kill"
    assert failed[0]["placement"]["executor"] == "ray"
    others = {e["candidate"] for e in events(home, "TrainingFinished")}
    assert len(others) == 2 and victim[0] not in others


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_a_runner_killed_mid_window_reattaches_and_trains_no_candidate_twice(
    cluster: str, window_workspace: Path, tmp_path: Path, how: str
) -> None:
    """SIGKILL: ``evo train`` dies with no cleanup; SIGTERM: the runner (``evo run``) stops as it
    does locally (exit 143, ``WorkInterrupted``: Ray's own SIGTERM handler did not replace
    its), leaving the students training on the cluster. Either way the next run reattaches."""
    home = _workspace(window_workspace, tmp_path / "home", RAY_CONFIG)
    env = {**os.environ, "RAY_ADDRESS": cluster}
    evo_cmd = [sys.executable, "-m", "adapters.cli", "--home", str(home)]
    first_cmd = evo_cmd + (["train"] if how == "SIGKILL" else ["run", "--until-idle"])
    first = subprocess.Popen(first_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while len(events(home, "TrainingStarted")) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(events(home, "TrainingStarted")) == 3
    time.sleep(3)  # the actors are training
    first.send_signal(getattr(signal, how))
    code = first.wait(60)
    if how == "SIGTERM":
        assert code == 143
        assert [e["signal"] for e in events(home, "WorkInterrupted")] == ["SIGTERM"]
    done_before = {e["candidate"] for e in events(home, "TrainingFinished")}
    assert len(done_before) < 3, "the runner was killed too late to test a reattach"
    second = subprocess.run(evo_cmd + ["train"], env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    started = [e["candidate"] for e in events(home, "TrainingStarted")]
    assert len(started) == 3  # none started again: the restarted runner reattached to all three
    finished = [e["candidate"] for e in events(home, "TrainingFinished")]
    assert sorted(finished) == sorted(started)
    assert not ray.util.list_named_actors(all_namespaces=True)


def test_an_unreachable_cluster_is_one_line_and_trains_nothing(window_workspace: Path, tmp_path: Path) -> None:
    config = RAY_CONFIG.model_copy(update={"train": RAY_CONFIG.train.model_copy(update={"ray_address": "127.0.0.1:1"})})
    home = _workspace(window_workspace, tmp_path / "home", config)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "adapters.cli", "--home", str(home), "train"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "evo: error: cannot reach the Ray cluster at 127.0.0.1:1 (Connection refused): start it with `ray start --head` "
        "or fix [train] ray_address / RAY_ADDRESS"
    ]
    assert not events(home, "TrainingStarted") and not (home / "work" / "window-1").exists()
