"""The runner's training workers: each dies with the runner (even on SIGKILL: every pool worker
does, ``adapters.training.pool.die_with_parent``) and leaves SIGINT/SIGTERM to it, so a Ctrl-C on
the terminal never fails a candidate; the runner stops them itself and records why."""

from __future__ import annotations

import signal
from typing import Any


def train_worker(spec_bytes: bytes, conn: Any) -> None:
    """The pool's worker under the runner: bound to the runner's life by the pool, it leaves
    SIGINT/SIGTERM to the runner (which stops its workers itself and records why)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from adapters.training.worker import main

    main(spec_bytes, conn)


def stop_workers() -> None:
    """Kill the training workers (the runner stops them itself on SIGINT/SIGTERM)."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        child.kill()
    for child in children:
        child.join(5)
