"""The runner's training workers: each dies with the runner (even on SIGKILL) and leaves
SIGINT/SIGTERM to it, so a Ctrl-C on the terminal never fails a candidate; the runner stops them
itself and records why."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def train_worker(spec_bytes: bytes, conn: Any) -> None:
    """The pool's worker under the runner: it dies with the runner (even on SIGKILL) and leaves
    SIGINT/SIGTERM to it (the runner stops its workers itself and records why)."""
    import multiprocessing

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = multiprocessing.parent_process()
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent.pid:  # the runner died before prctl
        os._exit(1)
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
