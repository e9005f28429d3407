"""The runner's overhead when idle (issue 7): no busy polling, near zero CPU while waiting.

An idle workspace (``evo init --period 1000000``: nothing is ever due, no model needed) and two
runners following it: ``evo run --json`` (the daemon form, inotify) and the same ``Runner`` with
``use_inotify=False`` started through the Python API (``evo run`` has no switch for it), which
waits with the ``stat`` fallback (one look every 0.5 s). Their CPU is read from
``/proc/<pid>/task/*/schedstat`` (nanoseconds; ``/proc/<pid>/stat`` ticks where it is missing).

Figures, each the median of ``ROUNDS`` rounds measured in this run:

* CPU seconds per wall second over a quiet window. Anchor: a naive poller (a Python process
  that ``os.stat``-s the ledger every 10 ms), measured over the same windows.
* CPU per ledger record: heartbeats appended one by one from this process (``App.execute``),
  ~20 ms apart so each wakes the runner; the runner's CPU over the round / the records.
  Anchor: the CPU this process spent in each append (``time.thread_time``).
* SIGINT on the idle runners: the exit code and the ``WorkInterrupted`` records (none expected).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

Report = Callable[[str, str, str, str], None]

QUICK = os.environ.get("BENCH_QUICK") == "1"
ROUNDS = 3
WINDOW_S = 1.0 if QUICK else 3.0
RECORDS = 30 if QUICK else 100
SPACING_S = 0.02

_STAT_RUNNER = """
import sys
from adapters.runtime.runner import Runner

with Runner(sys.argv[1], say=lambda line: print(line, file=sys.stderr, flush=True),
            progress=False, use_inotify=False) as runner:
    report = runner.run()
print("watch", report.watch, "interrupted", report.interrupted or "-", flush=True)
sys.exit(report.exit_code)
"""

_POLLER = """
import os, sys, time
path = sys.argv[1]
while True:
    os.stat(path).st_size
    time.sleep(0.01)
"""


def _evo(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "adapters.cli", "--home", str(home), *args]


def _cpu_s(pid: int) -> float:
    """The process's CPU time so far (user + system, all its threads)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        return sum(int(Path(f"/proc/{pid}/task/{t}/schedstat").read_text().split()[0]) for t in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class _Proc:
    """A child whose stderr is read by a thread (so it never blocks) and searched for a line."""

    def __init__(self, name: str, cmd: list[str]):
        self.name = name
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.p.stderr is not None
        for line in self.p.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith(prefix) for line in self.lines):
            if self.p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: no {prefix!r} line (rc {self.p.poll()}): {self.lines[-5:]}")
            time.sleep(0.05)

    def cpu(self) -> float:
        return _cpu_s(self.p.pid)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            out, _ = self.p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        self._reader.join(2)
        return self.p.returncode, out.strip()


def _per_wall(procs: dict[str, _Proc], window: float) -> dict[str, float]:
    before = {k: p.cpu() for k, p in procs.items()}
    t = time.monotonic()
    time.sleep(window)
    wall = time.monotonic() - t
    return {k: (p.cpu() - before[k]) / wall for k, p in procs.items()}


def run(report: Report) -> None:
    from adapters.runtime.app import App
    from evo_core import events as ev
    from evo_core.commands import Beat
    from ledger.record import GENESIS_PREV

    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        home = Path(tmp) / "ws"
        subprocess.run(_evo(home, "init", "--period", "1000000"), check=True, stdout=subprocess.DEVNULL)
        runners = {
            "inotify": _Proc("evo run", _evo(home, "run", "--json")),
            "stat": _Proc("Runner(use_inotify=False)", [sys.executable, "-c", _STAT_RUNNER, str(home)]),
        }
        poller = _Proc("poller", [sys.executable, "-c", _POLLER, str(home / "ledger.jsonl")])
        try:
            for r in runners.values():
                r.wait_for("phase ")  # its first line: it has loaded the ledger; then it waits
            time.sleep(1.0)  # the imports and the first fold are behind it

            # -------------------------------------------------------- CPU while waiting
            samples: dict[str, list[float]] = {k: [] for k in (*runners, "poller")}
            for _ in range(ROUNDS):
                for k, v in _per_wall({**runners, "poller": poller}, WINDOW_S).items():
                    samples[k].append(v)
            poller.stop(signal.SIGKILL)
            idle = {k: statistics.median(v) for k, v in samples.items()}
            for kind in runners:
                report(
                    f"idle runner ({kind}) CPU while waiting, {WINDOW_S:.0f} s windows",
                    f"{idle[kind]:.5f} s/s vs {idle['poller']:.4f} s/s",
                    "<= 0.01 s/s (no busy polling)",
                    "a Python loop os.stat-ing the ledger every 10 ms",
                )

            # -------------------------------------------------------- CPU per ledger record
            runner_us: dict[str, list[float]] = {k: [] for k in runners}
            append_us: list[float] = []
            with App(home) as app:
                period = app.ws.heartbeat_settings().evo_period_cycles
                for _ in range(5):  # warm this process's imports and caches
                    app.execute(Beat(period=period))
                time.sleep(1.0)
                for _ in range(ROUNDS):
                    before = {k: r.cpu() for k, r in runners.items()}
                    spent = 0.0
                    for _ in range(RECORDS):
                        t = time.thread_time()
                        app.execute(Beat(period=period))
                        spent += time.thread_time() - t
                        time.sleep(SPACING_S)
                    time.sleep(0.7)  # the stat runner looks every 0.5 s
                    for k, r in runners.items():
                        runner_us[k].append((r.cpu() - before[k]) / RECORDS * 1e6)
                    append_us.append(spent / RECORDS * 1e6)
            append = statistics.median(append_us)
            for kind in runners:
                cost = statistics.median(runner_us[kind])
                report(
                    f"runner ({kind}) CPU per heartbeat appended {SPACING_S * 1e3:.0f} ms apart "
                    f"({ROUNDS}x{RECORDS})",
                    f"{cost:.0f} us vs {append:.0f} us = {cost / append:.2f}x",
                    "<= 1x (following costs less than appending)",
                    "CPU of the append itself (App.execute(Beat))",
                )
        finally:
            poller.stop(signal.SIGKILL)
            stopped = {k: r.stop(signal.SIGINT) for k, r in runners.items()}

        with App(home) as app:
            interrupted = [
                rec.seq
                for rec in app.store.ledger.records(0, 0, prev=GENESIS_PREV)
                if isinstance(rec.event, ev.WorkInterrupted)
            ]
        codes = ", ".join(f"{k} {rc}" for k, (rc, _out) in stopped.items())
        report(
            "SIGINT on the idle runners: exit codes, WorkInterrupted records",
            f"{codes}; {len(interrupted)} WorkInterrupted" + (f" (seq {interrupted})" if interrupted else ""),
            "130 each, none recorded",
            "-",
        )
        kinds = {k: out for k, (_rc, out) in stopped.items()}
        if '"watch":"inotify"' not in kinds["inotify"].replace(" ", "") or "watch stat" not in kinds["stat"]:
            report("FINDING: the runners did not wait as intended", repr(kinds), "inotify / stat", "-")


if __name__ == "__main__":
    run(lambda *row: print(" | ".join(row)))
