"""A window's three students on Ray against the local pool (issue 16), on this machine.

The demo workspace (``evo init --demo``) with window 1 open, copied twice: one trains with
``[train] executor = "local"`` (a spawned process per student), the other with ``"ray"`` against a
local cluster started beforehand (``ray start --head --num-cpus <cores>``, its address in
``RAY_ADDRESS``), each ``evo train`` timed as a subprocess, alternating, ``ROUNDS`` rounds (the
median). The default demo recipe; Ray's memory reservation per student is the budget (the demo's
``max_gpu_memory_gb``: 2 GiB here so three fit, as the test does). Figures: Ray's wall time over
the pool's (goal: at most 1.2x); the per-candidate training cost Ray recorded (the README's
paper estimate for N nodes uses it); the cluster's start time (paid once per cluster, not per
window). Opt out with ``BENCH_RAY=0``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.learning_bench import _configure, _evo, _events, _feed, _genesis

Report = Callable[[str, str, str, str], None]

QUICK = os.environ.get("BENCH_QUICK") == "1"
ROUNDS = 1 if QUICK else 2


def _ray(*args: str) -> subprocess.CompletedProcess[str]:
    ray = Path(sys.executable).with_name("ray")
    return subprocess.run([str(ray), *args], capture_output=True, text=True, check=False)


def _train(base: Path, at: Path, env: dict[str, str]) -> tuple[float, list[dict[str, object]]]:
    shutil.rmtree(at, ignore_errors=True)
    shutil.copytree(base, at, symlinks=True)
    t = time.perf_counter()
    _evo(at, env, "train")
    wall = time.perf_counter() - t
    finished = [e for e in _events(at) if e["type"] == "TrainingFinished"]
    if len(finished) != 3:
        raise RuntimeError(f"{at.name}: {len(finished)} of 3 students finished")
    return wall, finished


def run(report: Report) -> None:
    if os.environ.get("BENCH_RAY") == "0":
        return
    try:
        import ray  # noqa: F401
    except ImportError:
        report("Ray window", "skipped: ray not installed (the ray extra)", "-", "-")
        return
    cores = len(os.sched_getaffinity(0))
    root = Path(tempfile.mkdtemp(prefix="evo-ray-bench-"))
    try:
        base = _genesis(root, "native")
        _feed(base, {}, 1)
        _configure(base, budget={"max_gpu_memory_gb": 2.0})
        t = time.perf_counter()
        started = _ray("start", "--head", f"--num-cpus={cores}", "--include-dashboard=false", "--disable-usage-stats")
        cluster_s = time.perf_counter() - t
        if started.returncode != 0:
            report("Ray window", f"skipped: ray start failed: {started.stderr.strip()[-200:]}", "-", "-")
            return
        env = {"RAY_ADDRESS": "auto"}  # the cluster just started on this machine
        ray_base = root / "ray-base"
        shutil.copytree(base, ray_base, symlinks=True)
        _configure(ray_base, train={"executor": "ray"})
        local_walls, ray_walls, costs = [], [], []
        for _ in range(ROUNDS):
            local_walls.append(_train(base, root / "local", {})[0])
            wall, finished = _train(ray_base, root / "ray", env)
            ray_walls.append(wall)
            for f in finished:
                train = json.loads((root / "ray" / "work" / str(f["candidate"]) / "training.json").read_text())
                costs.append(60.0 * float(train["walltime_minutes"]))
        local_s, ray_s = statistics.median(local_walls), statistics.median(ray_walls)
        report("3-student window on Ray, wall time (evo train)", f"{ray_s:.0f} s ({ray_s / local_s:.2f}x the pool)",
               "<= 1.2x the local pool", f"local pool {local_s:.0f} s, median of {ROUNDS}, {cores} cores")
        report("per-student training on Ray (trainer wall time)", f"{statistics.median(costs):.0f} s",
               "the README's N-node estimate", f"{len(costs)} students, {cores} CPUs shared by 3")
        report("local Ray cluster start (ray start --head)", f"{cluster_s:.1f} s", "once per cluster", "-")
    finally:
        _ray("stop", "--force")
        shutil.rmtree(root, ignore_errors=True)
