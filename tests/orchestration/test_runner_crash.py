"""The runner killed and stopped at many points of a real window (the demo model, the tiniest
training config), and the agent's heartbeats while it trains.

- SIGKILL after the spawn plan, between two TrainingStarted, mid-training (workers running),
  after the first TrainingFinished, after the baseline, the first gate, the ranking and the
  first two freezes; restarted until idle each time. Then: every candidate trained to
  completion exactly once (never a TrainingStarted after its TrainingFinished), frozen exactly
  once, archives whole (hashes), no freeze temp folder left, the links where the ledger says,
  `evo verify --deep` clean, and no training worker outlives a killed runner.
- A freeze that died between the archive's rename and its CandidateFrozen: the next run
  re-uses a whole archive and replaces a damaged one.
- SIGINT to the whole process group (Ctrl-C): exit 130, WorkInterrupted names the candidates,
  no candidate failed for it, the next run retrains them (attempt 2) and concludes; heartbeats
  the agent appends meanwhile land at once, between the runner's records.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from adapters.runtime.app import App
from adapters.freeze.archive import verify_ledger_archives
from adapters.hashing import hash_tree
from adapters.runtime.links import link_target, read_link
from adapters.runtime.runner import Runner
from adapters.runtime.workspace import Workspace
from evo_core import commands as cmd
from evo_core.config import EvoConfig, TrainConfig
from tests.orchestration._runner_setup import (
    alive,
    at_window,
    children,
    events,
    evo,
    kill,
    start_run,
    wait_for,
)

PERIOD = 100
CONFIG = EvoConfig(
    evo_period_cycles=PERIOD,
    train=TrainConfig(steps=12, batch_size=4, max_seq_len=64, new_per_branch=24, replay_size=12),
)
CANDIDATES = [f"Luna-G001-{b}-c{PERIOD}" for b in "abc"]


@pytest.fixture(scope="session")
def window_home(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return at_window(demo_workspace, tmp_path_factory.mktemp("runner-window") / "home", CONFIG)


@pytest.fixture
def home(window_home: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(window_home, copy, symlinks=True)
    return copy


def of(kind: str, evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in evs if e["type"] == kind]


def check_window_invariants(home: Path) -> None:
    evs = events(home)
    spawned = [e["candidate"] for e in of("CandidateSpawned", evs)]
    assert sorted(spawned) == CANDIDATES
    for c in spawned:
        mine = [e for e in evs if e.get("candidate") == c]
        finished = [i for i, e in enumerate(mine) if e["type"] == "TrainingFinished"]
        assert len(finished) == 1, f"{c} finished {len(finished)} times"
        assert not [e for e in mine[finished[0]:] if e["type"] == "TrainingStarted"], f"{c} trained again"
        assert not [e for e in mine if e["type"] in ("TrainingFailed", "BudgetBreached")]
        assert len([e for e in mine if e["type"] == "CandidateFrozen"]) == 1, f"{c} not frozen exactly once"
        assert len([e for e in mine if e["type"] == "GateEvaluated"]) == 1
    assert len(of("BaselineEvaluated", evs)) == 1 and len(of("CandidatesRanked", evs)) == 1
    assert len(of("Proposed", evs)) + len(of("NoPromotion", evs)) == 1
    ws = Workspace(home)
    with App(home) as app:
        state = app.state()
        records = [(r.seq, r.event) for r in app.store.ledger.records()]
    assert state.phase.value in ("idle", "proposed")
    assert verify_ledger_archives(ws, records) == []
    assert [p.name for p in ws.archive.iterdir() if p.name.startswith(".")] == []  # no temp folders
    assert sorted(p.name for p in ws.archive.iterdir()) == sorted(CANDIDATES + ["Luna-G000-genesis"])
    assert state.head is not None
    assert read_link(ws.head_link("Luna")) == link_target(state.head)
    assert read_link(ws.parent_link("Luna")) is None
    assert evo(home, "verify", "--deep") == 0


Condition = Callable[[list[dict[str, Any]], list[dict[str, Any]]], bool]


def nth(kind: str, n: int) -> Condition:
    """The ledger holds ``n`` events of ``kind`` (in all)."""
    return lambda evs, new: len(of(kind, evs)) >= n


def started_in_run(n: int) -> Condition:
    return lambda evs, new: len(of("TrainingStarted", new)) >= n


SCHEDULE: list[tuple[str, Condition]] = [
    ("after the spawn plan", nth("CandidateSpawned", 1)),
    ("between two TrainingStarted", started_in_run(2)),
    ("mid-training", started_in_run(3)),
    ("after the first TrainingFinished", nth("TrainingFinished", 1)),
    ("after the baseline", nth("BaselineEvaluated", 1)),
    ("after the first gate", nth("GateEvaluated", 1)),
    ("after the ranking", nth("CandidatesRanked", 1)),
    ("after the first freeze", nth("CandidateFrozen", 1)),
    ("after the second freeze", nth("CandidateFrozen", 2)),
]


def test_sigkill_at_many_points_of_a_window_then_resume(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    killed: list[str] = []
    for name, condition in SCHEDULE:
        before = len(events(home))
        proc = start_run(home, log)

        def hit() -> bool:
            evs = events(home)
            return condition(evs, evs[before:])

        if not wait_for(hit, proc):
            assert proc.wait(60) == 0, log.read_text()
            continue  # it got past this point before it was seen: the next kill, or done
        workers: list[int] = []
        if name == "mid-training":
            assert wait_for(lambda: len(children(proc.pid)) >= 3, proc, timeout=60)
            time.sleep(1.0)  # the students are training now
            workers = children(proc.pid)
        assert kill(proc) == -signal.SIGKILL
        killed.append(name)
        for pid in workers:  # they die with the runner (PR_SET_PDEATHSIG)
            assert wait_for(lambda: not alive(pid), timeout=10), f"worker {pid} outlived the runner"
    assert len(killed) >= 6, killed  # most kill points were reached
    proc = start_run(home, log)
    assert proc.wait(300) == 0, log.read_text()[-3000:]
    check_window_invariants(home)
    attempts = [e["attempt"] for e in of("TrainingStarted", events(home))]
    assert max(attempts) >= 2  # killed mid-training: trained again from scratch


def test_a_freeze_that_died_before_its_record_is_reused_or_replaced(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.freeze as freeze_pkg

    real_freeze = freeze_pkg.freeze

    class Died(BaseException):
        pass

    def dies_after_the_rename(*args: Any, **kw: Any) -> Any:
        real_freeze(*args, **kw)
        raise Died  # the archive is in place; CandidateFrozen never appended

    def fails_every_candidate(app: App, config: EvoConfig, candidates: list[str], **kw: Any) -> dict[str, Any]:
        for c in candidates:  # archived with what exists: quick, no torch
            app.execute(cmd.StartTraining(candidate=c))
            app.execute(cmd.FailTraining(candidate=c, reason="test: not trained"))
        return {}

    import adapters.training.students as training

    monkeypatch.setattr(training, "train_window", fails_every_candidate)
    monkeypatch.setattr(freeze_pkg, "freeze", dies_after_the_rename)
    with pytest.raises(Died):
        with Runner(home, say=lambda _: None, progress=False) as runner:
            runner.run(until_idle=True)
    monkeypatch.setattr(freeze_pkg, "freeze", real_freeze)
    assert not of("CandidateFrozen", events(home))
    ws = Workspace(home)
    (orphan,) = [p for p in ws.archive.iterdir() if p.name in CANDIDATES]
    whole = hash_tree(orphan)

    damaged = home.parent / "damaged"  # the same crash, then the orphan loses a file
    shutil.copytree(home, damaged, symlinks=True)
    broken = damaged / "models" / "archive" / orphan.name
    os.chmod(broken, os.stat(broken).st_mode | stat.S_IWUSR)
    (broken / "STATUS.txt").unlink()

    for h in (home, damaged):
        with Runner(h, say=lambda _: None, progress=False) as runner:
            assert runner.run(until_idle=True).interrupted == ""
        frozen = {e["candidate"]: e for e in of("CandidateFrozen", events(h))}
        assert sorted(frozen) == CANDIDATES
        if h == home:
            assert frozen[orphan.name]["archive_hash"] == whole  # re-used as it was
        with App(h) as app:
            records = [(r.seq, r.event) for r in app.store.ledger.records()]
        assert verify_ledger_archives(Workspace(h), records) == []
        assert (h / "models" / "archive" / orphan.name / "STATUS.txt").is_file()
        assert evo(h, "verify", "--deep") == 0


def test_sigint_then_the_resumed_training_with_the_agent_heartbeating(home: Path, tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the process group) mid-training; then the next run retrains while the
    agent appends heartbeats: they land at once, between the runner's records."""
    log = tmp_path / "run.log"
    proc = start_run(home, log, session=True)  # its own process group, as on a terminal
    assert wait_for(lambda: len(of("TrainingStarted", events(home))) >= 3, proc), log.read_text()
    assert wait_for(lambda: len(children(proc.pid)) >= 3, proc, timeout=60)
    workers = children(proc.pid)  # started, far from done (they are still loading torch)
    os.killpg(proc.pid, signal.SIGINT)  # the runner and its workers, as a terminal does
    assert proc.wait(60) == 130, log.read_text()
    evs = events(home)
    last = evs[-1]
    assert last["type"] == "WorkInterrupted" and last["signal"] == "SIGINT", evs[-4:]
    assert sorted(last["actions"]) == [f"TrainCandidate:{c}" for c in CANDIDATES]
    assert not of("TrainingFailed", evs) and not of("TrainingFinished", evs)  # a Ctrl-C fails none
    for pid in workers:
        assert wait_for(lambda: not alive(pid), timeout=10)
    assert "stopped by SIGINT" in log.read_text()

    before = len(evs)
    proc = start_run(home, log)
    latencies: list[float] = []
    with App(home) as agent:
        period = agent.ws.heartbeat_settings().evo_period_cycles
        cycle = agent.state().cycle
        room = (cycle // period + 1) * period - cycle - 1  # never into the next window
        while proc.poll() is None and len(latencies) < room:  # ~20 s: model loads, then training
            t0 = time.perf_counter()
            agent.execute(cmd.Beat(period=period))  # raises on any lock or concurrency failure
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.25)
    assert proc.wait(300) == 0, log.read_text()[-3000:]
    check_window_invariants(home)
    evs = events(home)
    assert sorted(e["attempt"] for e in of("TrainingStarted", evs)) == [1, 1, 1, 2, 2, 2]

    kinds = [e["type"] for e in evs[before:]]
    first_start = kinds.index("TrainingStarted")
    last_finish = len(kinds) - 1 - kinds[::-1].index("TrainingFinished")
    during = kinds[first_start:last_finish].count("Heartbeat")
    assert during >= 3, f"only {during} heartbeats landed while the runner trained"
    cycles = [e["cycle"] for e in evs if e["type"] == "Heartbeat"]
    assert cycles == list(range(1, len(cycles) + 1))
    assert len(latencies) >= 10
    assert max(latencies) < 3.0, f"a heartbeat waited {max(latencies):.2f} s"  # a loaded CPU, never a training run
    assert sorted(latencies)[len(latencies) // 2] < 0.5
