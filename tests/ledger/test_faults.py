"""Crash and concurrency tests with real processes (slow, still part of ``make test``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from evo_core import events as ev
from ledger import Checkpoint, EventStore, Ledger
from tests.ledger.conftest import audit

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _acked(path: Path) -> list[Checkpoint]:
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().split(b"\n")[:-1]:  # a line cut by the kill was never acked
        seq, digest = line.decode().split()
        out.append(Checkpoint(int(seq), digest))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fast", "slow"])
def test_sigkill_at_random_moments_loses_no_acknowledged_append(tmp_path: Path, mode: str) -> None:
    """16 kills per mode (32 in all); a fresh home every 4 kills keeps each check quick."""
    rng = random.Random(f"sigkill-{mode}")
    torn_seen = 0
    acked_total = 0
    for trial in range(16):
        home, acks = tmp_path / f"home{trial // 4}", tmp_path / f"acks{trial // 4}"
        args = [sys.executable, str(HERE / "_writer.py"), str(home), str(acks), str(rng.randrange(10**9))]
        proc = subprocess.Popen(args + ([mode] if mode == "slow" else []), env=ENV)
        time.sleep(rng.uniform(0.15, 0.45))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        led = Ledger(home)
        if trial % 2 == 0:  # otherwise the next writer's first append recovers
            torn = led.recover()
            if torn is not None:
                torn_seen += 1
                assert torn.path.read_bytes() and torn.seq == led.tail().seq + 1
            assert led.recover() is None
        acked = _acked(acks)
        acked_total += len(acked)
        rep = led.verify(acked[-1] if acked else None)  # the chain, ledger.head, the last ack
        assert rep.ok, rep
        have = {r.seq: r.hash for r in led.records()}
        missing = [cp for cp in acked if have.get(cp.seq) != cp.hash]
        assert not missing, (trial, missing[:3])
        if trial % 4 == 3:
            led.recover()
            assert led.verify().ok
            assert len(audit(home / "ledger.jsonl")) == led.tail().seq + 1
        led.close()
    assert acked_total > 0, "the writer never acknowledged anything"
    if mode == "slow":
        assert torn_seen > 0, "no kill landed inside a batch: the test lost its teeth"


@pytest.mark.slow
def test_four_processes_execute_heartbeats_concurrently(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    per_proc, procs = 40, 4
    running = [subprocess.Popen([sys.executable, str(HERE / "_beater.py"), str(home), str(per_proc)], env=ENV) for _ in range(procs)]
    time.sleep(0.5)
    (home / "go").touch()
    for p in running:
        assert p.wait(timeout=60) == 0
    led = Ledger(home)
    rep = led.verify()
    assert rep.ok, rep
    cycles = [r.event.cycle for r in led.records() if isinstance(r.event, ev.Heartbeat)]
    assert cycles == list(range(1, per_proc * procs + 1))
    state = EventStore(home, fsync=False).load().state
    assert state.cycle == per_proc * procs
