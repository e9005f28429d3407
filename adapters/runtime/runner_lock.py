"""One runner per workspace: ``<home>/.evo/runner.lock``, ``flock``-ed for as long as a runner runs.

Two runners on one workspace would train the same candidates twice and race each other's
appends. The lock is the kernel's (``flock``), so it goes with the process: a runner killed
with SIGKILL never leaves a stale lock, and there is nothing to clean up. The file's bytes only
say who holds it (pid, host, since when, as JSON), so a second runner can name the holder; they
are written after the lock is taken and never trusted for anything else. The descriptor is not
inherited by the runner's training workers (Python's default), so a worker that outlives its
runner does not keep the workspace locked.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from adapters.runtime.workspace import Workspace
from evo_core.errors import EnvironmentFault
from ledger.store import utc_now

LOCK_NAME = "runner.lock"


class RunnerBusy(EnvironmentFault):
    """Another runner holds the workspace (exit 1, naming it)."""


class RunnerLock:
    """Held from ``acquire`` to ``release`` (or the process's end, whatever ends it)."""

    def __init__(self, ws: Workspace) -> None:
        self.path = ws.private / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or raise ``RunnerBusy`` naming the runner that holds it."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = describe_holder(self.path)
            os.close(fd)
            raise RunnerBusy(
                f"another runner is already running on this workspace ({holder}; lock {self.path}): "
                "stop it first, or let it do the work"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": utc_now()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode() + b"\n", 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)  # no holder to name any more
            finally:
                os.close(fd)  # closing the only descriptor releases the lock

    def __enter__(self) -> RunnerLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def describe_holder(path: Path) -> str:
    """``pid 123 on host h since 2025-01-01T00:00:00.000Z`` from the lock file, as far as it says."""
    try:
        info = json.loads(path.read_bytes())
        return f"pid {int(info['pid'])} on host {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its pid is not written yet"
