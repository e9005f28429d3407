"""Train a window's candidates at once, one ``spawn``-ed process each.

Each worker gets its ``TrainSpec`` as bytes and a pipe; it sends progress dicts and, last, its
``TrainResult``. The parent waits on every pipe and every process sentinel together, so a
worker that dies (SIGKILL, out of memory, a segfault in a native library) is seen at once and
becomes a failed candidate with the reason; a window never hangs on a dead worker. The CPU is
divided among the workers (``threads = cores // workers``, at least 1), so three students on two
cores do not oversubscribe them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Sequence

import msgspec

from adapters.training.spec import TrainResult, TrainSpec
from evo_core.values import BudgetUsed, TrainingStats

Progress = Callable[[str, dict[str, Any]], None]
Done = Callable[[TrainResult], None]


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
            target=target, args=(msgspec.json.encode(spec), sender), name=f"evo-train-{spec.candidate}"
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
