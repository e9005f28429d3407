"""Progress of long steps: lines on stderr for whoever watches, and an activity file that
``evo status`` shows as "in progress: ...".

A long step (an init's export, a parity check, an evaluation, a training window) opens a
``step`` and reports ``(step, done, total)`` through the ``Progress`` callable it gets; deeper
code that takes a ``progress=`` argument is handed that callable (or ``current()``, the
innermost open step of this thread of work). Each report may go two ways:

- to stderr (``StderrProgress``): on a terminal one line redrawn in place; otherwise (logs, CI)
  a line when the step starts, each time it crosses another tenth, and when it ends;
- to ``<home>/.evo/activity/<pid>.json`` (``Activity``): what this process is doing now,
  written atomically at most once a second, rewritten for the outer step when an inner one ends,
  and removed when the outermost one ends, exception or not. One file per process, so a runner
  and an `evo export` beside it do not overwrite each other.

The file is advisory output and nothing else: the ledger is the only truth. Only the status
display reads it (``read_all``), and it decides nothing: a file whose pid is not running (or is a
different process under a reused pid: the kernel's start time of the pid is recorded) is
reported as stale and never shown as in progress. A process killed with SIGKILL leaves its file;
the next step any process opens on the workspace removes the files of dead pids.
"""

from __future__ import annotations

import contextvars
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import msgspec

from adapters.runtime.workspace import write_atomic

Progress = Callable[[str, int, int | None], None]
"""``progress(step, done, total)``: ``done`` of ``total`` (None: not known) units of ``step``."""

ACTIVITY_DIR = "activity"
WRITE_EVERY_S = 1.0  # the file is rewritten at most this often (and at a step's first and last report)

# the unit each step counts, for the display; a step not named here counts itself
UNITS = {
    "copy": "files",
    "load": "models",
    "export": "tensors",
    "write": "tensors",
    "quantize": "",  # llama.cpp's quantizer: 0/1 then 1/1
    "parity": "prompts",
    "probes": "probes",
    "train": "steps",
    "candidates": "candidates",
}


def silent(step: str, done: int, total: int | None) -> None:
    """The ``Progress`` that reports nothing."""


def bar(done: int, total: int | None, width: int = 20) -> str:
    """``[#####...............]``; all dots while the total is not known."""
    filled = min(width, int(width * done / total)) if total else 0
    return "[" + "#" * filled + "." * (width - filled) + "]"


def tenth(done: int, total: int | None) -> int:
    """Which tenth of the total ``done`` is in (0..10; 0 while the total is not known)."""
    return min(10, (10 * done) // total) if total else 0


def counted(step: str, done: int, total: int | None) -> str:
    """``12/40 tensors`` (``12 tensors`` while the total is not known)."""
    count = f"{done}/{total}" if total is not None else f"{done}"
    unit = UNITS.get(step, step)
    return f"{count} {unit}" if unit else count


def duration(seconds: float) -> str:
    """``45s``, ``1m20s``, ``2h05m``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


# ---------------------------------------------------------------- stderr


class StderrProgress:
    """A ``Progress`` on a stream (stderr). ``begin`` prints what a step does; each report is one
    line, redrawn in place on a terminal, elsewhere (logs, CI) printed each time the count
    crosses another tenth, ``every_s`` apart at least (a step of a second prints no bar at all);
    ``end`` prints how it ended and how long it took. ``step(..., echo=StderrProgress())`` calls
    ``begin`` and ``end`` itself."""

    def __init__(self, stream: TextIO | None = None, *, width: int = 20, every_s: float = 1.0):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.width = width
        self.every_s = every_s
        self._printed = 0.0
        self._counting = ""
        self._tenth = -1
        self._drawn = False
        self._began: list[float] = []

    def begin(self, what: str) -> None:
        self._clear()
        print(f"{what}...", file=self.stream, flush=True)
        self._began.append(time.monotonic())
        self._printed = self._began[-1]
        self._counting, self._tenth = "", -1

    def __call__(self, step: str, done: int, total: int | None) -> None:
        if step != self._counting:
            self._counting, self._tenth = step, -1
        line = f"  {step} {bar(done, total, self.width)} {counted(step, done, total)}"
        if self.live:
            self.stream.write("\r\x1b[2K" + line)
            self.stream.flush()
            self._drawn = True
        elif tenth(done, total) > self._tenth and time.monotonic() - self._printed >= self.every_s:
            self._tenth, self._printed = tenth(done, total), time.monotonic()
            print(line, file=self.stream, flush=True)

    def end(self, what: str, note: str = "done") -> None:
        self._clear()
        began = self._began.pop() if self._began else time.monotonic()
        print(f"{what}: {note} in {duration(time.monotonic() - began)}", file=self.stream, flush=True)
        self._counting, self._tenth = "", -1

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[2K")
            self._drawn = False


# ---------------------------------------------------------------- the activity file


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """What one process says it is doing (``<home>/.evo/activity/<pid>.json``)."""

    what: str  # "exporting GGUF for Luna-G000-genesis"
    step: str  # the step it opened ("export"); a report may name another one ("parity")
    subject: str = ""  # the generation or candidate, when there is one
    counting: str = ""  # the step the last report named
    done: int | None = None
    total: int | None = None
    pid: int
    pid_start: int | None = None  # the kernel's start time of the pid (a reused pid differs)
    host: str
    started: float  # unix time the step opened
    updated: float  # unix time of the last report

    def describe(self, now: float) -> str:
        """``exporting GGUF for X (12/40 tensors, 1m20s)``; a report of another step than the one
        opened is named, unless its unit names it: ``exporting GGUF for X (parity 3/8 prompts,
        1m20s)``, ``evaluating candidate C (2/40 probes, 5s)``."""
        parts = []
        if self.done is not None:
            counting = self.counting or self.step
            other = counting != self.step and UNITS.get(counting, counting) != counting
            named = f"{counting} " if other else ""
            parts.append(named + counted(counting, self.done, self.total))
        parts.append(duration(now - self.started))
        return f"{self.what} ({', '.join(parts)})"


def activity_dir(home: Path) -> Path:
    return Path(home) / ".evo" / ACTIVITY_DIR


def start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (``/proc/<pid>/stat`` field 22), None where unknown."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
        return int(raw[raw.rindex(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def running(activity: Activity) -> tuple[bool, str]:
    """Whether the process that wrote ``activity`` still runs, and if not, why not."""
    if activity.host != socket.gethostname():
        return False, f"written on host {activity.host}"
    try:
        os.kill(activity.pid, 0)
    except ProcessLookupError:
        return False, f"pid {activity.pid} is not running"
    except PermissionError:
        pass  # another user's process: it exists
    except OSError as exc:  # pragma: no cover - an invalid pid
        return False, f"pid {activity.pid}: {exc.strerror}"
    now = start_ticks(activity.pid)
    if activity.pid_start is not None and now is not None and now != activity.pid_start:
        return False, f"pid {activity.pid} is another process now"
    return True, ""


@dataclass
class _Frame:
    what: str
    step: str
    subject: str
    started: float
    counting: str = ""
    done: int | None = None
    total: int | None = None
    echo: StderrProgress | None = None
    written: float = 0.0


@dataclass
class _Tracker:
    """This process's open steps on one workspace, innermost last."""

    home: Path
    frames: list[_Frame] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return activity_dir(self.home) / f"{os.getpid()}.json"

    def write(self, frame: _Frame, now: float) -> None:
        record = Activity(
            what=frame.what, step=frame.step, subject=frame.subject, counting=frame.counting,
            done=frame.done, total=frame.total, pid=os.getpid(), pid_start=start_ticks(os.getpid()),
            host=socket.gethostname(), started=frame.started, updated=now,
        )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, msgspec.json.encode(record) + b"\n")
        except OSError:
            pass  # advisory: a full disk or a read-only home never fails the step itself
        frame.written = now

    def remove(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass


class Step:
    """An open step: call it as the ``Progress`` of the work it covers."""

    def __init__(self, tracker: _Tracker, frame: _Frame):
        self._tracker = tracker
        self._frame = frame

    def __call__(self, step: str, done: int, total: int | None) -> None:
        f = self._frame
        first = f.done is None or step != f.counting
        f.counting, f.done, f.total = step, done, total
        if f.echo is not None:
            f.echo(step, done, total)
        now = time.time()
        last = total is not None and done >= total
        if self._innermost() and (first or last or now - f.written >= WRITE_EVERY_S):
            self._tracker.write(f, now)

    def describe(self, what: str) -> None:
        """Say anew what the step is doing (``training window 1: 1/3 candidates done``)."""
        self._frame.what = what
        if self._innermost():
            self._tracker.write(self._frame, time.time())

    def _innermost(self) -> bool:
        """Only the innermost open step writes the file (a closed one writes nothing)."""
        frames = self._tracker.frames
        return bool(frames) and frames[-1] is self._frame


_current: contextvars.ContextVar[Step | None] = contextvars.ContextVar("evo_activity_step", default=None)
_trackers: dict[Path, _Tracker] = {}


def sweep(home: Path) -> None:
    """Remove the activity files of processes that are not running (never this one's)."""
    folder = activity_dir(home)
    if not folder.is_dir():
        return
    for path in folder.glob("*.json"):
        if path.name == f"{os.getpid()}.json":
            continue
        try:
            record = msgspec.json.decode(path.read_bytes(), type=Activity)
        except (OSError, msgspec.DecodeError):
            continue
        if not running(record)[0] and record.host == socket.gethostname():
            path.unlink(missing_ok=True)


@contextmanager
def step(
    home: str | os.PathLike[str], step: str, what: str, *, subject: str = "", echo: StderrProgress | None = None
) -> Iterator[Step]:
    """Open a step of this process on the workspace ``home``: its activity file says ``what``
    until the step ends (then the outer step's, or none); ``echo`` also reports on stderr."""
    key = Path(home).resolve()
    tracker = _trackers.setdefault(key, _Tracker(key))
    now = time.time()
    frame = _Frame(what=what, step=step, subject=subject, started=now, echo=echo)
    if not tracker.frames:
        try:
            sweep(key)
        except OSError:
            pass
    tracker.frames.append(frame)
    tracker.write(frame, now)
    if echo is not None:
        echo.begin(what)
    opened = Step(tracker, frame)
    token = _current.set(opened)
    failed = False
    try:
        yield opened
    except BaseException:
        failed = True
        raise
    finally:
        _current.reset(token)
        tracker.frames.remove(frame)
        if echo is not None:
            echo.end(frame.what, "FAILED" if failed else "done")
        if tracker.frames:
            tracker.write(tracker.frames[-1], time.time())
        else:
            tracker.remove()
            _trackers.pop(key, None)


def current() -> Progress:
    """The innermost open step of this context as a ``Progress`` (``silent`` when none is open)."""
    opened = _current.get()
    return opened if opened is not None else silent


def read_all(home: str | os.PathLike[str]) -> tuple[list[Activity], list[str]]:
    """The activity files of the workspace: those of running processes, and one line for each
    stale or unreadable one (the status display's; nothing else reads them)."""
    folder = activity_dir(Path(home))
    live: list[Activity] = []
    stale: list[str] = []
    if not folder.is_dir():
        return live, stale
    for path in sorted(folder.glob("*.json")):
        try:
            record = msgspec.json.decode(path.read_bytes(), type=Activity)
        except (OSError, msgspec.DecodeError):
            stale.append(f"{path.name}: unreadable")
            continue
        alive, why = running(record)
        if alive:
            live.append(record)
        else:
            stale.append(f"{record.what}: {why}")
    live.sort(key=lambda a: a.started)
    return live, stale


def in_progress(home: str | os.PathLike[str], now: float | None = None) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """``read_all`` as ``evo status`` shows it: ``projections.status.InProgress`` values of the
    running processes' steps, and the lines of the ignored files."""
    from projections.status import InProgress

    now = time.time() if now is None else now
    live, stale = read_all(home)
    shown = tuple(
        InProgress(
            pid=a.pid, step=a.step, subject=a.subject, done=a.done, total=a.total,
            seconds=round(max(0.0, now - a.started), 1), text=a.describe(now),
        )
        for a in live
    )
    return shown, tuple(stale)


__all__ = [
    "Activity", "Progress", "Step", "StderrProgress", "activity_dir", "bar", "counted", "current", "duration",
    "in_progress", "read_all", "running", "silent", "step", "sweep", "tenth",
]
