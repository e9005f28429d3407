"""Training workers die with the process that started them (issue 13): a runner killed with
SIGKILL leaves no worker training on unseen. By the kernel's parent-death signal
(``PR_SET_PDEATHSIG``) and, where that is missing, by the parent-pid watchdog alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

ROOT = Path(__file__).resolve().parents[2]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


RUNNER = textwrap.dedent(
    """
    import sys
    from msgspec.structs import replace
    from adapters.training.pool import run_pool
    from tests.orchestration import _workers
    from tests.orchestration.test_pool import spec

    out = sys.argv[1]
    run_pool([replace(spec(b), out_dir=out) for b in "abc"], target=_workers.trains_forever)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_a_runner_killed_with_sigkill_takes_its_training_workers_with_it(tmp_path: Path) -> None:
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path)], cwd=ROOT)
    try:
        assert wait_for(lambda: len(list(tmp_path.glob("*.pid"))) == 3 or runner.poll() is not None, 120)
        assert runner.poll() is None
        workers = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
        assert all(alive(pid) for pid in workers)
        time.sleep(0.5)  # training
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait(30)
    for pid in workers:
        assert wait_for(lambda: not alive(pid), 10), f"worker {pid} outlived its runner"


CHILD = textwrap.dedent(
    """
    import os, sys, time
    from adapters.training.pool import die_with_parent

    die_with_parent(int(sys.argv[1]), pdeathsig=False, poll_s=0.1)  # the watchdog alone
    print(os.getpid(), flush=True)
    time.sleep(600)
    """
)

PARENT = textwrap.dedent(
    """
    import os, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())], stdout=subprocess.PIPE)
    print(child.stdout.readline().decode().strip(), flush=True)
    time.sleep(600)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_the_watchdog_alone_kills_an_orphaned_worker(tmp_path: Path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert alive(child)
        time.sleep(0.3)
        assert alive(child)  # a living parent: the watchdog leaves it be
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
    assert wait_for(lambda: not alive(child), 10), f"worker {child} outlived its parent"


def test_a_worker_whose_parent_is_already_gone_dies_at_once() -> None:
    code = "from adapters.training.pool import die_with_parent; die_with_parent(1, pdeathsig=False); print('alive')"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == -signal.SIGKILL and "alive" not in out.stdout
