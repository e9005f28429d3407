"""Promotion per model family (issue 14): the demo world on each family's architecture.

For every family of ``adapters.models.tiny.FAMILIES`` (``BENCH_FAMILIES=qwen2,gemma2`` for some),
the real pipeline in subprocesses, as the learning bench drives it: ``evo init --demo --family F``
(the demo recipe pre-trains that family's architecture, tokenizer kind and chat template on the
demo world), window 1's conversations and heartbeats, ``evo run --until-idle`` (three students
trained, exported to GGUF with parity, evaluated through llama.cpp, gated, ranked, frozen,
proposed), then a signed approval, the shadow, the cutover and the burn-in shortened to a few
cycles. Figures per family: the window's verdicts (goal: the high-karma student PASS, the others
caught by the laws gate, as on the default Llama), whether the proposal was promoted (goal: burn-in
passed), the genesis build and the window's wall time (anchor: the default Llama's in the same run).

Opt-in (``BENCH_FAMILIES=1 make bench``, or a comma-separated list of families): each family takes
a few minutes on 2 cores.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.learning_bench import PERIOD, Report, _configure, _evo, _feed, _operator_key, _promote, _window

WANTED = os.environ.get("BENCH_FAMILIES", "")


def _families() -> list[str]:
    from adapters.models.tiny import FAMILIES

    if WANTED in ("", "0"):
        return []
    if WANTED == "1":
        return ["llama", *FAMILIES]
    return [f.strip() for f in WANTED.split(",") if f.strip()]


def _one(root: Path, family: str) -> dict[str, object]:
    home = root / family
    key = _operator_key(root)
    extra = [] if family == "llama" else ["--family", family]
    started = time.perf_counter()
    _evo(home, {}, "init", "--demo", *extra, "--period", str(PERIOD), "--operator-key", f"{key}.pub")
    genesis_s = time.perf_counter() - started
    _configure(
        home,
        shadow={"cycles": 5, "min_samples": 4, "replay": True},
        burn_in={"cycles": 5, "min_answers": 0, "max_latency_ratio": 1000.0},
    )
    _feed(home, {}, 1)
    w = _window(home, {}, 1)
    promoted = w["proposed"] is not None and _promote(home, {}, key, w["proposed"])
    verdicts = ", ".join(f"{c.get('strategy')}: {c['verdict']}" for c in w["candidates"].values())
    shutil.rmtree(home, ignore_errors=True)
    return {"genesis_s": genesis_s, "window_s": w["seconds"], "verdicts": verdicts, "promoted": promoted}


def run(report: Report) -> None:
    families = _families()
    if not families:
        return
    root = Path(tempfile.mkdtemp(prefix="evo-families-bench-"))
    try:
        anchor = _one(root, "llama") if "llama" not in families else None
        for family in families:
            r = _one(root, family)
            if family == "llama":
                anchor = r
            base = f"Llama demo: window {anchor['window_s']:.0f} s" if anchor else "-"
            report(f"{family}: window 1 verdicts", str(r["verdicts"]), "karma PASS, others FAIL laws", base)
            report(f"{family}: promoted (approve, shadow, cutover, burn-in)", "yes" if r["promoted"] else "NO",
                   "yes", f"genesis built in {r['genesis_s']:.0f} s, window {r['window_s']:.0f} s")
    finally:
        shutil.rmtree(root, ignore_errors=True)
