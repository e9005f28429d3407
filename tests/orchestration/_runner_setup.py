"""Workspaces for the runner's end-to-end and crash tests: the shared demo workspace copied,
a config written, the demo world's conversations of the first window ingested, heartbeats up
to the window; and `evo run` as a real process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from adapters.cli import main
from adapters.data import demo_world
from adapters.data.conversations import encode
from evo_core.config import EvoConfig, render_config

ROOT = Path(__file__).resolve().parents[2]


def evo(home: Path, *args: str) -> int:
    return main(["--home", str(home), *args])


def at_window(demo_workspace: Path, home: Path, config: EvoConfig, *, clean: bool = False,
              probes: Callable[[Path], Any] | None = None) -> Path:
    """A copy of the demo workspace with ``config``, the conversations of cycles 1..period
    ingested (``clean``: only those with karma > 0, so no student learns to break a law) and
    heartbeats up to the window."""
    shutil.copytree(demo_workspace, home, symlinks=True)
    (home / "config.toml").write_text(render_config(config))
    period = config.evo_period_cycles
    convs = demo_world.conversations(1, period, seed=0, per_1000_cycles=1000)
    if clean:
        convs = [c for c in convs if c.karma > 0]
    feed = home.parent / f"{home.name}-feed.jsonl"
    feed.write_bytes(b"".join(encode(c) + b"\n" for c in convs))
    assert evo(home, "ingest", str(feed)) == 0
    if probes is not None:
        probes(home)
    assert evo(home, "heartbeat", "--count", str(period)) == 0
    return home


def events(home: Path) -> list[dict[str, Any]]:
    return [json.loads(line)["event"] for line in (home / "ledger.jsonl").read_bytes().splitlines()]


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))
    except FileNotFoundError:
        return 0


def start_run(home: Path, log: Path, *args: str, session: bool = False) -> subprocess.Popen[bytes]:
    """`evo run --until-idle` as its own process (its lines and bars into ``log``); with
    ``session`` in a process group of its own (``killpg`` then reaches it and its workers)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "--home", str(home), "run", "--until-idle", *args],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=session,
        )


def children(pid: int) -> list[int]:
    """The processes ``pid`` started (its training workers)."""
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            out += [int(p) for p in text.split()]
    except OSError:
        pass
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes] | None = None,
             timeout: float = 300.0, step: float = 0.01) -> bool:
    """Poll ``condition`` until true; False if ``proc`` exits first or on timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            return condition()
        time.sleep(step)
    return True


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> int:
    proc.send_signal(sig)
    return proc.wait(60)
