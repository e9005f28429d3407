"""Probe evaluation: seconds per candidate on the demo model, and how it grows with the probe
set (the demo world's recall set grows with every era). The goal is linear growth: seconds per
probe flat across sizes. Medians of several runs; HEAD's own evaluation is the anchor.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

Report = Callable[[str, str, str, str], None]
QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = 3 if QUICK else 5


def run(report: Report) -> None:
    from adapters.evaluation.probes import build_demo_probes
    from adapters.evaluation.measure import evaluate
    from adapters.models.demo import build_demo_genesis
    from adapters.serving.gguf_export import export_generation

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        folder = Path(tmp) / "Luna-G000-genesis"
        build_demo_genesis(folder)
        export_generation(folder)
        gguf = folder / "model.gguf"
        per_probe = []
        for cycle in (2500, 25_000) if QUICK else (2500, 25_000, 100_000):
            probes = build_demo_probes(cycle)
            n = len(probes.recall) + len(probes.generalize) + len(probes.tone) + len(probes.laws)
            times = []
            for _ in range(REPS):
                t = time.perf_counter()
                evaluate(gguf, probes, reference_gguf=gguf)
                times.append(time.perf_counter() - t)
            sec = statistics.median(times)
            per_probe.append(sec / n)
            report(
                f"probe evaluation, demo model, window at cycle {cycle:,} ({n} probes)",
                f"{sec:.3f} s ({sec / n * 1e3:.2f} ms/probe)",
                "linear in probes",
                "HEAD vs itself, llama.cpp, 1 thread",
            )
        report(
            "  growth: ms/probe at the largest set vs the smallest",
            f"{per_probe[-1] / per_probe[0]:.2f}x",
            "~1x (linear)",
            "-",
        )


if __name__ == "__main__":
    run(lambda *row: print(" | ".join(row)))
