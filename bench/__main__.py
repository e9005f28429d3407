"""``python -m bench``: run every ``bench/*_bench.py`` module's ``run(report)``, print one table.

``python -m bench ledger`` runs only the modules whose name contains ``ledger``.
``BENCH_QUICK=1`` asks every module to scale down.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def _report(figure: str, value: str, goal: str, anchor: str) -> None:
    print(f"| {figure} | {value} | {goal} | {anchor} |", flush=True)


def main() -> None:
    wanted = sys.argv[1:]
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name.endswith("_bench") and (not wanted or any(w in m.name for w in wanted))
    )
    print("| figure | value | goal | anchor |\n| --- | --- | --- | --- |", flush=True)
    for name in names:
        t = time.perf_counter()
        importlib.import_module(f"bench.{name}").run(_report)
        print(f"<!-- {name}: {time.perf_counter() - t:.0f} s -->", file=sys.stderr)


if __name__ == "__main__":
    main()
