"""Wait for the ledger to change without polling it: the runner's idle loop.

Theory of operation. A ``LedgerWatch`` watches the ledger file's *directory* with Linux
inotify (through ctypes: ``IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE``), so an
append by any process (a ``write`` to ``ledger.jsonl``, the rename of ``ledger.head``) wakes it,
and so does a ledger file replaced by a rename. ``wait(changed)`` arms the watch first and only
then asks ``changed()`` (an O(1) look at the ledger's tail), so an append that lands between
the caller's last look and the wait is never missed; after each wake-up it asks again and goes
back to sleep in ``select`` if the change was something else (the runner's own files live in
sub-folders, which are not watched). Sleeping in ``select`` costs no CPU; a long timeout is
only a safety net.

Where inotify is missing (not Linux, no libc, the per-user watch limit reached) it falls back to
``stat`` of the ledger file every ``poll_interval`` seconds (~0.5 s), asking ``changed()`` only
when the file's inode, size or mtime moved. ``wake()`` (a self-pipe) interrupts a wait from
another thread, e.g. to stop a runner embedded in an agent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import time
from pathlib import Path
from typing import Callable

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
WATCH_MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)
_SAFETY_S = 30.0  # wake up at least this often even without events (a lost event, NFS)


def _inotify_fd(folder: Path) -> int | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        init1, add_watch = libc.inotify_init1, libc.inotify_add_watch
    except (OSError, AttributeError):
        return None
    fd = int(init1(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0:
        return None
    if int(add_watch(fd, os.fsencode(folder), WATCH_MASK)) < 0:
        os.close(fd)
        return None
    return fd


def _file_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class LedgerWatch:
    """Wakes when ``path`` (the ledger file) may have changed. ``kind`` is ``"inotify"`` or
    ``"stat"`` (the fallback)."""

    def __init__(self, path: Path, *, poll_interval: float = 0.5, use_inotify: bool = True):
        self.path = Path(path)
        self.poll_interval = poll_interval
        self._fd = _inotify_fd(self.path.parent) if use_inotify else None
        self.kind = "inotify" if self._fd is not None else "stat"
        self.wakeups = 0  # times the process woke up while waiting (a busy loop shows here)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)  # ``wake`` from elsewhere

    def close(self) -> None:
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._fd = None
        self._wake_r = self._wake_w = -1

    def wake(self) -> None:
        """Make a ``wait`` in progress (another thread's) ask ``changed()`` again now."""
        try:
            os.write(self._wake_w, b"!")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (it will wake anyway) or closed

    def __enter__(self) -> LedgerWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _drain(self) -> list[str]:
        """Read every pending event; the names it carries (for tests and diagnostics)."""
        assert self._fd is not None
        names: list[str] = []
        while True:
            try:
                data = os.read(self._fd, 64 * 1024)
            except BlockingIOError:
                return names
            if not data:
                return names
            at = 0
            while at + _EVENT.size <= len(data):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(data, at)
                raw = data[at + _EVENT.size : at + _EVENT.size + length]
                names.append(raw.split(b"\0", 1)[0].decode(errors="replace"))
                at += _EVENT.size + length

    def wait(self, changed: Callable[[], bool], timeout: float | None = None) -> bool:
        """Block until ``changed()`` is true or ``timeout`` seconds passed; returns ``changed()``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._fd is not None:
            self._drain()  # the watch is armed: events from now on wake us
            while not changed():
                left = _SAFETY_S if deadline is None else min(_SAFETY_S, deadline - time.monotonic())
                if left <= 0:
                    return False
                ready, _, _ = select.select([self._fd, self._wake_r], [], [], left)
                self.wakeups += 1
                if self._fd in ready:
                    self._drain()
                if self._wake_r in ready:
                    self._drain_wake()
            return True
        key = _file_key(self.path)
        if changed():
            return True
        while True:
            left = self.poll_interval if deadline is None else min(self.poll_interval, deadline - time.monotonic())
            if left <= 0:
                return False
            ready, _, _ = select.select([self._wake_r], [], [], left)
            self.wakeups += 1
            if ready:
                self._drain_wake()
                if changed():
                    return True
            now = _file_key(self.path)
            if now != key:
                key = now
                if changed():
                    return True
