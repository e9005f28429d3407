"""Learning (issue 11): does evolution really learn, on any CPU, on the config's defaults?

Every run here is the real pipeline in subprocesses (``evo init --demo``, ``evo ingest``,
``evo heartbeat``, ``evo run --until-idle``, and for promotions a signed ``evo approve`` with
the shadow, cutover and burn-in shortened to a few cycles), on the demo world.

Figures, all measured in this run:

* **Robustness of window 1**: ``SEEDS`` student seed bases (``seed_base``) x 2 CPU kernel paths
  (the native one, and ``ATEN_CPU_CAPABILITY=default MKL_ENABLE_INSTRUCTIONS=SSE4_2``, which
  changes float rounding the way another CPU does; the genesis is built under each path).
  Per strategy: its verdicts over every run (goal: one verdict per strategy, the high-karma
  student PASS, the others caught by the laws gate) and whether any student diverged (goal: none).
* **A window's wall time**, 3 students on 2 cores: the median over the robustness runs (goal:
  at most 3 minutes). Anchor: the median of a student's own training time (its training.json)
  in the same windows.
* **The distillation ablation**, same seeds, two windows with two students each (uniform, which
  samples the low-karma law-breaking, and high-karma, which is promoted when it passes):
  ``known`` (the default: each teacher only where it knows the material, hard labels on new
  conversations), ``CE only`` (alpha 1, beta 0: replay on hard labels), ``all`` (the spec's
  literal formula: both teachers on every example), and ``known`` against ``CE only`` again with a
  replay buffer of 60 (where hard labels alone may no longer hold the old eras). Per variant: new facts learned (training
  wording and held-out wording), genesis kept, the era G(N) learned kept through window 2 (the
  stabilizer must not erase it), and the uniform student's law-breaking answers.
* **What each generation knows** on the defaults (the ``known`` variant): the genesis and the
  generation window 1 promoted, per era (0-2), facts in the training wordings and in the
  held-out wording, and law-breaking (window 2's students are the ablation's G002 rows; the
  demo promotes them too and prints the same table).

``BENCH_LEARNING=ablation`` (or ``robustness``) runs one part. ``BENCH_QUICK=1``: 2 seeds, the ablation's ``known`` and ``CE only`` variants.
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
from typing import Any

Report = Callable[[str, str, str, str], None]

QUICK = os.environ.get("BENCH_QUICK") == "1"
ROOT = Path(__file__).resolve().parents[1]
SEEDS = (424242, 1000, 2000, 3000, 4000) if not QUICK else (424242, 1000)
KERNELS = {
    "native": {},
    "generic": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2"},
}
PERIOD = 2500
RATE = 200
STRATEGY_SHORT = {"recent_weighted": "recent", "uniform_sample": "uniform", "high_karma_weighted": "karma"}


def _evo(home: Path, env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
    full.pop("EVO_OPERATOR_KEY", None)
    full["EVO_OPERATOR_HOME"] = str(Path(home).parent / "operator-home")  # the bench's witness, not yours
    proc = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "--home", str(home), *args],
        cwd=ROOT, env=full, capture_output=True, text=True,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"evo {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return proc


def _events(home: Path) -> list[dict[str, Any]]:
    return [json.loads(line)["event"] for line in (home / "ledger.jsonl").read_bytes().splitlines()]


def _configure(home: Path, **changes: Any) -> None:
    """Set values in the workspace's config.toml with `evo config set`'s editor (comments kept,
    the whole file validated before it is written): a dict sets that section's fields, any other
    value the top-level setting."""
    from adapters.cli.config_cmd import set_values

    flat: dict[str, Any] = {}
    for name, value in changes.items():
        if isinstance(value, dict):
            flat.update({f"{name}.{field}": v for field, v in value.items()})
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    set_values(home / "config.toml", flat)


def _operator_key(root: Path) -> Path:
    """The bench operator's key (outside the workspaces), made once: every genesis pins it."""
    key = root / "operator.key"
    if not key.exists():
        _evo(root / "keys", {}, "keygen", "--out", str(key))
    return key


def _genesis(root: Path, kernel: str) -> Path:
    home = root / f"genesis-{kernel}"
    key = _operator_key(root)
    _evo(home, KERNELS[kernel], "init", "--demo", "--period", str(PERIOD), "--operator-key", f"{key}.pub")
    return home


def _feed(home: Path, env: dict[str, str], era: int) -> None:
    from adapters.data.conversations import encode
    from adapters.data.demo_world import conversations

    convs = conversations((era - 1) * PERIOD + 1, era * PERIOD, seed=0, per_1000_cycles=RATE)
    feed = home.parent / f"{home.name}-era{era}.jsonl"
    feed.write_bytes(b"".join(encode(c) + b"\n" for c in convs))
    _evo(home, env, "ingest", str(feed))
    cycle = max((e["cycle"] for e in _events(home) if e["type"] == "Heartbeat"), default=0)
    _evo(home, env, "heartbeat", "--count", str(era * PERIOD - cycle))


def _window(home: Path, env: dict[str, str], gen: int) -> dict[str, Any]:
    """`evo run --until-idle` on an open window: per candidate its strategy and verdict."""
    start = time.perf_counter()
    _evo(home, env, "run", "--until-idle", check=False)
    seconds = time.perf_counter() - start
    events = _events(home)
    out: dict[str, Any] = {"seconds": seconds, "candidates": {}, "proposed": None}
    for e in events:
        name = e.get("candidate") or ""
        if not name.startswith(f"Luna-G{gen:03d}-"):
            continue
        c = out["candidates"].setdefault(name, {"verdict": "?", "diverged": False, "train_s": None})
        if e["type"] == "CandidateSpawned":
            c["strategy"] = STRATEGY_SHORT.get(e.get("strategy", ""), e.get("strategy", ""))
        elif e["type"] == "GateEvaluated":
            failed = [g["name"] for g in e["gates"] if not g["passed"]]
            c["verdict"] = "PASS" if e["passed"] else "FAIL " + "+".join(failed)
        elif e["type"] == "TrainingFailed":
            c["verdict"] = "FAILED training"
            c["diverged"] = "diverged" in e.get("reason", "")
    for name, c in out["candidates"].items():
        training = home / "work" / name / "training.json"
        if training.is_file():
            c["train_s"] = json.loads(training.read_text())["walltime_minutes"] * 60
    proposed = [e for e in events if e["type"] == "Proposed" and e["proposal"]["candidate"].startswith(f"Luna-G{gen:03d}-")]
    out["proposed"] = proposed[-1] if proposed else None
    return out


def _promote(home: Path, env: dict[str, str], key: Path, proposed: dict[str, Any]) -> bool:
    """Approve, shadow (replayed), cut over, burn in: True when the candidate became HEAD."""
    _evo(home, env, "approve", "--key", str(key), "--proposal", proposed["proposal_hash"][:16])
    for _ in range(3):
        _evo(home, env, "run", "--until-idle", check=False)
        _evo(home, env, "heartbeat", "--count", "5")
    _evo(home, env, "run", "--until-idle", check=False)
    candidate = proposed["proposal"]["candidate"]
    return any(e["type"] == "BurnInPassed" and e["generation"] == candidate for e in _events(home))


def _robustness(report: Report, root: Path) -> None:
    rows: list[tuple[str, int, dict[str, Any]]] = []
    for kernel in KERNELS:
        genesis = _genesis(root, kernel)
        for seed in SEEDS:
            home = root / f"w1-{kernel}-{seed}"
            shutil.copytree(genesis, home, symlinks=True)
            _configure(home, seed_base=seed)
            _feed(home, KERNELS[kernel], 1)
            rows.append((kernel, seed, _window(home, KERNELS[kernel], 1)))
            shutil.rmtree(home, ignore_errors=True)
    verdicts: dict[str, list[str]] = {}
    diverged = students = 0
    for kernel, seed, w in rows:
        line = ", ".join(f"{c.get('strategy')}: {c['verdict']}" for c in w["candidates"].values())
        print(f"<!-- window 1, {kernel} kernels, seed_base {seed}: {line}; {w['seconds']:.0f} s -->", file=sys.stderr)
        for c in w["candidates"].values():
            verdicts.setdefault(c.get("strategy", "?"), []).append(c["verdict"])
            diverged += c["diverged"]
            students += 1
    runs = len(rows)
    for strategy, vs in verdicts.items():
        counts = {v: vs.count(v) for v in dict.fromkeys(vs)}
        value = "; ".join(f"{v} {n}/{len(vs)}" for v, n in counts.items())
        goal = "PASS in every run" if strategy == "karma" else "FAIL laws in every run"
        report(f"window 1 verdict, {strategy} strategy ({runs} windows: {len(SEEDS)} seeds x {len(KERNELS)} kernel paths)",
               value, goal, "one verdict per strategy across all runs")
    report("students that diverged", f"{diverged} of {students}", "0", "19 of 36 before the stable recipe (learning.md)")
    walls = [w["seconds"] for _, _, w in rows]
    trains = [c["train_s"] for _, _, w in rows for c in w["candidates"].values() if c["train_s"]]
    report("window 1 wall time, 3 students on 2 cores (median)", f"{statistics.median(walls):.0f} s",
           "<= 180 s", f"a student's own training time in the window: {statistics.median(trains):.0f} s (median)" if trains else "-")


CE_ONLY = {"alpha": 1.0, "beta": 0.0}
SMALL_REPLAY = {"replay_size": 60}
# variant: (its [distill] changes, its [train] changes)
VARIANTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "known (default)": ({}, {}),
    "CE only": (CE_ONLY, {}),
    "all (spec literal)": ({"scope": "all"}, {}),
    "known, replay 60": ({}, SMALL_REPLAY),
    "CE only, replay 60": (CE_ONLY, SMALL_REPLAY),
}


def _ablation(report: Report, root: Path) -> None:
    from adapters.evaluation.knowledge import measure, render_table
    from adapters.serving.generations import gguf_path
    from adapters.runtime.workspace import Workspace

    genesis = root / "genesis-native"
    if not genesis.is_dir():
        genesis = _genesis(root, "native")
    key = _operator_key(root)
    variants = VARIANTS if not QUICK else dict(list(VARIANTS.items())[:2])
    for index, (variant, (distill, train)) in enumerate(variants.items()):
        env: dict[str, str] = {}
        home = root / f"ablation-{index}"
        shutil.copytree(genesis, home, symlinks=True)
        _configure(home, max_concurrent_experiments=2,
                   data_strategies=("uniform_sample", "high_karma_weighted"),
                   distill=distill, train=train,
                   shadow={"cycles": 5, "min_samples": 4, "replay": True},
                   burn_in={"cycles": 5, "min_answers": 0, "max_latency_ratio": 1000.0})
        ws = Workspace(home)
        rows = []
        cells: list[str] = []
        for gen in (1, 2):
            _feed(home, env, gen)
            w = _window(home, env, gen)
            by_strategy = {c.get("strategy"): n for n, c in w["candidates"].items()}
            for strategy in ("uniform", "karma"):
                name = by_strategy.get(strategy)
                path = gguf_path(ws, name) if name else None
                if path is not None:
                    rows.append(measure(path, f"{name} ({strategy})", range(0, gen + 1)))
            if gen == 1:
                if w["proposed"] is None or not _promote(home, env, key, w["proposed"]):
                    cells.append("window 1 promoted nothing: no window 2")
                    break
        print(f"<!-- ablation {variant}:\n{render_table(rows)}\n-->", file=sys.stderr)
        for k in rows:
            eras = {e.era: e for e in k.eras}
            last = max(eras)
            new = eras[last]
            text = (f"new era {last}: {new.trained}/{new.facts} trained wording, {new.held_out}/{new.facts} held-out; "
                    f"genesis kept {eras[0].trained}/{eras[0].facts}")
            if last == 2:
                text += f"; era 1 (G(N)'s) kept {eras[1].trained}/{eras[1].facts}"
            text += f"; laws broken {k.law_violations}/{k.law_prompts}"
            cells.append(f"{k.generation.split(' ')[-1]} G{last:03d}: {text}")
        report(f"distillation ablation: {variant}", "<br>".join(cells),
               "known: new facts learned, genesis and G(N)'s era kept, uniform breaks laws",
               "CE only and all (spec literal) on the same seeds, this run")
        if variant == "known (default)" and len(rows) == 4:
            _knowledge(report, home)


def _knowledge(report: Report, home: Path) -> None:
    from adapters.evaluation.knowledge import measure
    from adapters.serving.generations import gguf_path
    from adapters.runtime.workspace import Workspace

    state_events = _events(home)
    genesis = next(e["generation"] for e in state_events if e["type"] == "GenerationRegistered")
    promoted = [e["generation"] for e in state_events if e["type"] == "Promoted"]
    ws = Workspace(home)
    for name in [genesis, *promoted]:
        path = gguf_path(ws, name)
        if path is None:
            continue
        k = measure(path, name, range(0, 3))
        value = "; ".join(
            f"{'genesis' if e.era == 0 else f'era {e.era}'} {e.trained}/{e.facts} ({e.held_out} held-out)" for e in k.eras
        ) + f"; laws broken {k.law_violations}/{k.law_prompts}"
        report(f"what {name} knows", value, "each promotion adds its era, keeps the older ones",
               "the genesis row: the start")


def run(report: Report) -> None:
    root = Path(tempfile.mkdtemp(prefix="evo-learning-bench-"))
    parts = os.environ.get("BENCH_LEARNING", "robustness,ablation").split(",")
    try:
        if "robustness" in parts:
            _robustness(report, root)
        if "ablation" in parts:
            _ablation(report, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
