"""Train a window's candidates at once, one ``spawn``-ed process each.

Each worker gets its ``TrainSpec`` as bytes and a pipe; it sends progress dicts and, last, its
``TrainResult``. The parent waits on every pipe and every process sentinel together, so a
worker that dies (SIGKILL, out of memory, a segfault in a native library) is seen at once and
becomes a failed candidate with the reason; a window never hangs on a dead worker. The CPU is
divided among the workers (``threads = cores // workers``, at least 1), so three students on two
cores do not oversubscribe them.

Every worker dies with the process that started it, however that one ends (SIGKILL included),
so no orphan keeps training on unseen: before its target runs, the child asks Linux to SIGKILL it
when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and a watchdog thread checks the parent pid
twice a second for where that is not available (or the parent died before the ``prctl``).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Sequence

import msgspec

from adapters.training.spec import TrainResult, TrainSpec
from evo_core.values import BudgetUsed, TrainingStats

Progress = Callable[[str, dict[str, Any]], None]
Done = Callable[[TrainResult], None]


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int, *, pdeathsig: bool = True, poll_s: float = 0.5) -> None:
    """Make this process die (SIGKILL) when ``parent_pid``, its parent, dies: the kernel's
    parent-death signal on Linux (``pdeathsig``), and a watchdog thread that polls ``getppid``
    (a dead parent's children are re-parented) everywhere."""
    if pdeathsig and sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)

    def orphaned() -> bool:
        return os.getppid() != parent_pid

    if orphaned():  # it died before the prctl: nobody would send the signal
        os.kill(os.getpid(), signal.SIGKILL)

    def watch() -> None:
        while not orphaned():
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="evo-parent-watchdog", daemon=True).start()


def _child(target: Callable[[bytes, Connection], None], parent_pid: int, spec_bytes: bytes, conn: Connection) -> None:
    """A worker process's entry: bound to its parent's life, then ``target``."""
    die_with_parent(parent_pid)
    target(spec_bytes, conn)


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    cores = cores or len(os.sched_getaffinity(0))
    return max(1, cores // max(1, workers))


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"worker killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"worker killed by signal {-exitcode}"
    return f"worker exited with code {exitcode} before reporting a result"


def failed(spec: TrainSpec, reason: str) -> TrainResult:
    return TrainResult(
        candidate=spec.candidate,
        status="failed",
        stats=TrainingStats(),
        budget_used=BudgetUsed(),
        reason=reason,
        placement=spec.placement,
    )


def run_pool(
    specs: Sequence[TrainSpec],
    *,
    on_progress: Progress | None = None,
    on_done: Done | None = None,
    target: Callable[[bytes, Connection], None] | None = None,
) -> dict[str, TrainResult]:
    """Run every spec in its own process; results by candidate (in the order they finish,
    ``on_done`` is called as each one does, so the caller can record it at once)."""
    if target is None:
        from adapters.training.worker import main as target
    ctx = multiprocessing.get_context("spawn")
    running: dict[Any, tuple[TrainSpec, Any, Connection]] = {}
    results: dict[str, TrainResult] = {}
    for spec in specs:
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(
            target=_child,
            args=(target, os.getpid(), msgspec.json.encode(spec), sender),
            name=f"evo-train-{spec.candidate}",
        )
        proc.start()
        sender.close()  # the child holds the only sending end: EOF means it is gone
        running[receiver] = (spec, proc, receiver)

    def finish(spec: TrainSpec, result: TrainResult) -> None:
        results[spec.candidate] = result
        if on_done is not None:
            on_done(result)

    while running:
        for conn in wait(list(running)):
            spec, proc, receiver = running[conn]
            try:
                message = receiver.recv()
            except (EOFError, OSError):
                proc.join()
                del running[conn]
                if spec.candidate not in results:
                    finish(spec, failed(spec, _death(proc.exitcode)))
                continue
            if isinstance(message, tuple) and message[0] == "result":
                finish(spec, msgspec.json.decode(message[1], type=TrainResult))
            elif on_progress is not None:  # ("progress", {...}) or the bare dict
                on_progress(spec.candidate, message[1] if isinstance(message, tuple) else message)
    return results
