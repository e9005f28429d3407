"""Ledger benchmarks: durable appends, batched appends, cold replay, snapshot opens, memory.

``run(report)`` calls ``report(figure, value, goal, anchor)`` once per figure. Every figure is
measured in this run (medians of several repetitions), on files in a temporary directory
(``BENCH_DIR`` chooses where; it must be on the disk you care about, fsync rates depend on it).
``BENCH_QUICK=1`` scales every count down (a smoke run of a few seconds).

Anchors: a raw ``write`` + ``fsync`` loop of lines of the same size (the ceiling of any durable
append), and the ``eventsourcing`` library's SQLite recorder (``eventsourcing.sqlite``, a file
database in WAL mode) doing the same work.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evo_core.events import Heartbeat

Report = Callable[[str, str, str, str], None]

QUICK = os.environ.get("BENCH_QUICK") == "1"
REPS = 3


def _median(fn: Callable[[], float], reps: int = REPS) -> float:
    return statistics.median(fn() for _ in range(reps))


# ---------------------------------------------------------------- eventsourcing anchor


def _es_app(db: Path) -> Any:
    from eventsourcing.application import Application

    return Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)})


def _es_aggregate_class() -> Any:
    from eventsourcing.domain import Aggregate, event

    class Beats(Aggregate):
        def __init__(self) -> None:
            self.cycle = 0

        @event("Beat")
        def beat(self, cycle: int) -> None:
            self.cycle = cycle

    return Beats


_BEATS: Any = None


def _beats() -> Any:
    global _BEATS
    if _BEATS is None:
        _BEATS = _es_aggregate_class()
        _BEATS.__module__ = __name__
        _BEATS.__qualname__ = "_BEATS"
    return _BEATS


def es_durable_rate(tmp: Path, n: int) -> float:
    db = tmp / f"es-{time.monotonic_ns()}.sqlite"
    app = _es_app(db)
    agg = _beats()()
    app.save(agg)
    t = time.perf_counter()
    for i in range(n):
        agg.beat(cycle=i + 1)
        app.save(agg)
    rate = n / (time.perf_counter() - t)
    app.close()
    return rate


def es_build(db: Path, n: int) -> Any:
    app = _es_app(db)
    agg = _beats()()
    for i in range(n):
        agg.beat(cycle=i + 1)
        if i % 1000 == 999:
            app.save(agg)
    app.save(agg)
    app.close()
    return agg.id


def es_replay_rate(db: Path, agg_id: Any, n: int) -> float:
    app = _es_app(db)
    t = time.perf_counter()
    agg = app.repository.get(agg_id)
    rate = n / (time.perf_counter() - t)
    assert agg.cycle == n, agg.cycle
    app.close()
    return rate


# ---------------------------------------------------------------- our ledger


def ours_durable_rate(tmp: Path, n: int) -> tuple[float, int]:
    from ledger import Ledger

    home = tmp / f"ours-{time.monotonic_ns()}"
    led = Ledger(home)
    led.append([Heartbeat(cycle=0)])
    t = time.perf_counter()
    for i in range(n):
        led.append([Heartbeat(cycle=i + 1)])
    rate = n / (time.perf_counter() - t)
    size = (home / "ledger.jsonl").stat().st_size // (n + 1)
    led.close()
    shutil.rmtree(home)
    return rate, size


def raw_fsync_rate(tmp: Path, n: int, line_size: int) -> float:
    path = tmp / f"raw-{time.monotonic_ns()}"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    line = b"x" * (line_size - 1) + b"\n"
    os.write(fd, line)
    os.fsync(fd)
    t = time.perf_counter()
    for _ in range(n):
        os.write(fd, line)
        os.fsync(fd)
    rate = n / (time.perf_counter() - t)
    os.close(fd)
    path.unlink()
    return rate


def build_heartbeats(home: Path, n: int, batch: int = 1000) -> float:
    from ledger import Ledger

    led = Ledger(home)
    t = time.perf_counter()
    for start in range(0, n, batch):
        led.append([Heartbeat(cycle=c + 1) for c in range(start, min(n, start + batch))])
    rate = n / (time.perf_counter() - t)
    led.close()
    return rate


def replay_in_subprocess(home: Path) -> tuple[float, int, int]:
    """(seconds, records, peak RSS in KiB) of a cold ``EventStore.load`` without snapshots."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.ledger_bench", "replay", str(home)],
        check=True, capture_output=True, text=True,
    ).stdout
    d = json.loads(out)
    return d["seconds"], d["records"], d["maxrss_kib"]


def _replay_child(home: str) -> None:
    from ledger import EventStore

    t = time.perf_counter()
    loaded = EventStore(home, snapshot_every=1 << 62, fsync=False).load()
    seconds = time.perf_counter() - t
    n = loaded.checkpoint.seq + 1
    assert loaded.state.cycle == n, (loaded.state.cycle, n)
    print(json.dumps({"seconds": seconds, "records": n, "maxrss_kib": _peak_rss_kib()}))


def _peak_rss_kib() -> int:
    """This process's peak RSS. ``ru_maxrss`` survives ``execve`` on Linux, so a child of a big
    bench process would report its parent's peak; ``VmHWM`` belongs to the new address space."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def open_seconds(home: Path, reps: int) -> float:
    from ledger import EventStore

    def once() -> float:
        t = time.perf_counter()
        EventStore(home, snapshot_every=1 << 62, fsync=False).load()
        return time.perf_counter() - t

    return _median(once, reps)


# ---------------------------------------------------------------- the run


def run(report: Report) -> None:
    from ledger import EventStore, Ledger

    scale = 10 if QUICK else 1
    n_durable = 2000 // scale
    n_big = 1_000_000 // scale
    n_small = 100_000 // scale
    n_es_replay = 100_000 // scale
    base = os.environ.get("BENCH_DIR")
    tmp = Path(tempfile.mkdtemp(prefix="evo-ledger-bench-", dir=base))
    try:
        # durable appends: ours and the raw loop interleaved so drift hits both alike
        ours, raws, ess, sizes = [], [], [], []
        for _ in range(5):  # interleaved, so that drift of the disk hits all three alike
            rate, size = ours_durable_rate(tmp, n_durable)
            ours.append(rate)
            sizes.append(size)
            raws.append(raw_fsync_rate(tmp, n_durable, size))
            ess.append(es_durable_rate(tmp, n_durable // 2))
        o, r, es = statistics.median(ours), statistics.median(raws), statistics.median(ess)
        report("durable append, 1 event/append (appends/s)", f"{o:,.0f}", "", f"raw write+fsync {r:,.0f}/s")
        report("  vs raw write+fsync loop, same line size", f"{o / r:.2f}x", ">= 0.9x", f"{sizes[0]} B lines")
        report("  vs eventsourcing SQLite, 1 save/event", f"{o / es:.2f}x", ">= 1.5x",
               f"eventsourcing {es:,.0f}/s (raw loop: {r / es:.2f}x)")

        # batched appends building the replay corpora
        big, small, tiny = tmp / "big", tmp / "small", tmp / "tiny"
        rate_big = build_heartbeats(big, n_big)
        build_heartbeats(small, n_small)
        build_heartbeats(tiny, 1000)
        report(f"batched append, {n_big:,} heartbeats, 1000/batch (records/s)", f"{rate_big:,.0f}", "", "fsync per batch")

        # cold replay + verify + fold, in fresh processes (also gives peak memory)
        runs = [replay_in_subprocess(big) for _ in range(REPS)]
        secs = statistics.median(s for s, _, _ in runs)
        ours_replay = n_big / secs
        rss_big = max(m for _, _, m in runs)
        small_runs = [replay_in_subprocess(small) for _ in range(REPS)]
        rss_small = max(m for _, _, m in small_runs)
        report(f"cold replay+verify+fold, {n_big:,} events (events/s)", f"{ours_replay:,.0f}", ">= 500,000", f"{secs:.2f} s")
        es_db = tmp / "es-replay.sqlite"
        agg_id = es_build(es_db, n_es_replay)
        es_rate = _median(lambda: es_replay_rate(es_db, agg_id, n_es_replay))
        report(f"  vs eventsourcing replay ({n_es_replay:,} events)", f"{ours_replay / es_rate:.1f}x", ">= 8x", f"eventsourcing {es_rate:,.0f}/s")
        report(f"peak RSS, replay of {n_small:,} / {n_big:,}", f"{rss_small / 1024:.1f} / {rss_big / 1024:.1f} MiB",
               "flat", f"ratio {rss_big / rss_small:.2f}x")

        # opening: a snapshot near the tail of the big ledger vs a 1k-event ledger
        store = EventStore(big, fsync=False)
        store.snapshot()
        store.close()
        with Ledger(big, fsync=False) as led:
            led.append([Heartbeat(cycle=n_big + 1 + i) for i in range(500)])
        t_big = open_seconds(big, 15)
        t_tiny = open_seconds(tiny, 15)
        report(f"open {n_big:,}-event ledger, snapshot 500 behind tail (ms)", f"{t_big * 1e3:.2f}", "", "")
        report("  vs open 1k-event ledger, no snapshot", f"{t_big / t_tiny:.2f}x", "<= 2x", f"{t_tiny * 1e3:.2f} ms")
        with Ledger(big, fsync=False) as led:
            led.append([Heartbeat(cycle=n_big + 501 + i) for i in range(9_499)])
        t_worst = open_seconds(big, 5)
        report("  worst case at snapshot_every=10k (tail 9,999) (ms)", f"{t_worst * 1e3:.2f}", "", "O(tail)")
        t = time.perf_counter()
        rep = Ledger(big).verify()
        assert rep.ok, rep
        report(f"verify {rep.count:,} records (records/s)", f"{rep.count / (time.perf_counter() - t):,.0f}", "", "Ledger.verify")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _print_report(figure: str, value: str, goal: str, anchor: str) -> None:
    print(f"| {figure} | {value} | {goal} | {anchor} |", flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["replay"]:
        _replay_child(sys.argv[2])
    else:
        print("| figure | value | goal | anchor |\n| --- | --- | --- | --- |")
        run(_print_report)
