"""The agent's cost: `evo heartbeat` as a whole process, on an empty and on a 1M-event ledger.

Anchors, measured in the same run: the same command on a fresh workspace (the goal is that a
long ledger costs almost nothing: snapshots make opening O(tail)), and a bare
``python -c "import msgspec, blake3"`` (the floor of any Python process that hashes and
decodes). Medians of several runs; the machine is noisy, so ratios are what to read.

The packages are byte-compiled first, as `pip install` does for a deployed agent (an
environment with PYTHONDONTWRITEBYTECODE would otherwise recompile every module on every
heartbeat, which measures the compiler, not evo).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

Report = Callable[[str, str, str, str], None]

QUICK = os.environ.get("BENCH_QUICK") == "1"
BIG = 20_000 if QUICK else 1_000_000
RUNS = 5 if QUICK else 15


def _evo(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "adapters.cli", "--home", str(home), *args]


def _wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def _median_wall(cmd: list[str], runs: int = RUNS) -> float:
    _wall(cmd)  # warm the page cache
    return statistics.median(_wall(cmd) for _ in range(runs))


def _interleaved(cmds: dict[str, list[str]], runs: int = RUNS) -> dict[str, float]:
    """Medians with the commands interleaved, so a noisy neighbour hits all of them alike."""
    for cmd in cmds.values():
        _wall(cmd)
    samples: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(runs):
        for key, cmd in cmds.items():
            samples[key].append(_wall(cmd))
    return {k: statistics.median(v) for k, v in samples.items()}


def run(report: Report) -> None:
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("evo_core", "ledger", "projections", "adapters"):
        compileall.compile_dir(str(root / package), quiet=1)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        small, big = Path(tmp) / "small", Path(tmp) / "big"
        for home in (small, big):
            subprocess.run(_evo(home, "init", "--period", "10000000"), check=True, stdout=subprocess.DEVNULL)
        t = time.perf_counter()
        for _ in range(BIG // 100_000 or 1):
            subprocess.run(
                _evo(big, "heartbeat", "--count", str(min(BIG, 100_000))),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        build = time.perf_counter() - t
        report(
            f"`evo heartbeat --count 100000` x{BIG // 100_000 or 1} (decide + batched append)",
            f"{BIG / build:,.0f} heartbeats/s",
            "-",
            "-",
        )
        subprocess.run(_evo(big, "status"), check=True, stdout=subprocess.DEVNULL)  # snapshot
        m = _interleaved(
            {
                "empty": _evo(small, "heartbeat"),
                "big": _evo(big, "heartbeat"),
                "floor": [sys.executable, "-c", "import msgspec, blake3"],
            }
        )
        report(
            f"`evo heartbeat` on a {BIG:,}-event ledger vs on an empty one",
            f"{m['big'] * 1e3:.0f} ms vs {m['empty'] * 1e3:.0f} ms = {m['big'] / m['empty']:.2f}x",
            "<= 1.2x",
            "the same command, empty ledger",
        )
        report(
            "`evo heartbeat` vs `python -c 'import msgspec, blake3'`",
            f"{m['empty'] * 1e3:.0f} ms vs {m['floor'] * 1e3:.0f} ms = {m['empty'] / m['floor']:.2f}x",
            "<= 2x",
            "bare interpreter + msgspec + blake3",
        )


if __name__ == "__main__":
    run(lambda *row: print(" | ".join(row)))
