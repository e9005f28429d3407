"""Stand-in training workers for the pool's tests (top-level: ``spawn`` imports them by name).
They speak the real worker protocol; the real worker is tested in tests/training."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from multiprocessing.connection import Connection

import msgspec

from adapters.training.spec import TrainResult, TrainSpec
from evo_core.values import BudgetUsed, TrainingStats


def finishes(spec_bytes: bytes, conn: Connection) -> None:
    spec = msgspec.json.decode(spec_bytes, type=TrainSpec)
    for step in range(1, 4):
        conn.send(("progress", {"step": step, "steps": 3, "loss": 1.0 / step, "tokens": 10 * step}))
    result = TrainResult(
        candidate=spec.candidate,
        status="finished",
        stats=TrainingStats(steps=3, loss_start=1.0, loss_final=0.33),
        budget_used=BudgetUsed(steps=3, tokens_processed=30),
    )
    conn.send(("result", msgspec.json.encode(result)))


def killed(spec_bytes: bytes, conn: Connection) -> None:
    conn.send(("progress", {"step": 1, "steps": 3}))
    os.kill(os.getpid(), signal.SIGKILL)


def exits(spec_bytes: bytes, conn: Connection) -> None:
    os._exit(3)


def by_branch(spec_bytes: bytes, conn: Connection) -> None:
    """Branch a finishes, b is killed, c exits: one pool, three fates."""
    spec = msgspec.json.decode(spec_bytes, type=TrainSpec)
    {"a": finishes, "b": killed, "c": exits}[spec.branch](spec_bytes, conn)


def rendezvous(spec_bytes: bytes, conn: Connection) -> None:
    """Finish only once all three branches are alive together (their marks in out_dir); a pool
    that ran them one after another would leave the first waiting until it gives up."""
    spec = msgspec.json.decode(spec_bytes, type=TrainSpec)
    folder = Path(spec.out_dir)
    (folder / spec.branch).touch()
    deadline = time.monotonic() + 60
    while len(list(folder.iterdir())) < 3:
        if time.monotonic() > deadline:
            os._exit(4)
        time.sleep(0.01)
    finishes(spec_bytes, conn)


def trains_forever(spec_bytes: bytes, conn: Connection) -> None:
    """A worker that never finishes: it notes its pid in out_dir and keeps "training" (one long
    step: it sends nothing more, so a broken pipe would never tell it the parent is gone)."""
    spec = msgspec.json.decode(spec_bytes, type=TrainSpec)
    conn.send(("progress", {"step": 1, "steps": 10**9}))
    (Path(spec.out_dir) / f"{spec.branch}.pid").write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)
