"""The runner's loop on a model-less workspace (`evo init`), its adapters replaced by fakes
that append what the real ones append, through ``App.execute``: what it dispatches where,
``until_idle``, no spinning on an action that does nothing, waiting on inotify (near zero CPU,
woken by another process's append) or the stat fallback, and the signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from adapters import rollout
from adapters.runtime.app import App
from adapters.cli import main
from adapters.runtime.runner import Runner, action_name
from adapters.training.spec import TrainResult
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import EvoConfig, render_config
from evo_core.reactions import (
    Action,
    EvaluateBaseline,
    EvaluateCandidate,
    FreezeCandidate,
    RankCandidates,
    TrainCandidate,
)
from evo_core.values import BudgetUsed, TrainingStats
from ledger.memory import MemoryLedger
from ledger.store import Ledger
from tests.cli.conftest import LedgerDriver
from tests.core.helpers import BASELINE, BETTER, CFG, GOOD, PASSES_BUT_WORSE, SIGNED, fake_hash

METRICS = {"a": GOOD, "b": BETTER, "c": PASSES_BUT_WORSE}


def kinds(home: Path) -> list[str]:
    return [json.loads(line)["event"]["type"] for line in (home / "ledger.jsonl").read_bytes().splitlines()]


# ---------------------------------------------------------------- fakes of the adapters


def fake_train_window(app: App, config: EvoConfig, candidates: list[str], *, on_progress: Any = None,
                      on_done: Any = None, target: Any = None) -> dict[str, TrainResult]:
    """``adapters.training.students.train_window`` without torch: each candidate it is given
    started, one progress message, finished."""
    results = {}
    for c in candidates:
        app.execute(cmd.StartTraining(candidate=c))
        if on_progress is not None:
            on_progress(c, {"step": 1, "steps": 1, "loss": 1.0, "tokens": 10})
        result = TrainResult(candidate=c, status="finished",
                             stats=TrainingStats(steps=1, loss_start=2.0, loss_final=1.0),
                             budget_used=BudgetUsed(steps=1, tokens_processed=10))
        app.execute(cmd.FinishTraining(candidate=c, stats=result.stats, budget_used=result.budget_used))
        results[c] = result
        if on_done is not None:
            on_done(result)
    return results


# ``adapters.evaluation.steps``'s measuring handlers without llama.cpp: the same commands, fixed
# metrics by branch, fake archive hashes (ranking and concluding are the real ones: no model)


def fake_evaluate_baseline(app: App, config: EvoConfig, action: EvaluateBaseline) -> None:
    app.execute(cmd.RecordBaseline(metrics=BASELINE, config=config))


def fake_evaluate_candidate(app: App, config: EvoConfig, action: EvaluateCandidate) -> None:
    branch = app.state().candidates[action.candidate].branch
    app.execute(cmd.RecordEvaluation(candidate=action.candidate, metrics=METRICS[branch], config=config))


def fake_freeze_candidate(app: App, config: EvoConfig, action: FreezeCandidate) -> None:
    c = action.candidate
    app.execute(cmd.Freeze(candidate=c, archive=f"archive/{c}", archive_hash=fake_hash("a" + c),
                           model_hash=fake_hash("m" + c), manifest_hash=fake_hash("f" + c)))


class Rollout:
    """``adapters.rollout`` as fakes that append the core's commands (the real ones also verify
    signatures and replay through llama.cpp); ``calls`` in order. ``idle`` names the steps that
    do nothing (return [])."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, config: EvoConfig) -> None:
        self.calls: list[str] = []
        self.idle: set[str] = set()
        self.config = config
        for name in ("self_approve", "start_shadow", "replay_shadow", "complete_shadow", "complete_burn_in"):
            monkeypatch.setattr(rollout, name, self._fake(name))

    def _fake(self, name: str) -> Callable[..., Any]:
        def step(app: App, config: EvoConfig, *rest: Any) -> Any:
            self.calls.append(name)
            if name in self.idle:
                return None if name == "replay_shadow" else []
            command: cmd.Command
            if name == "start_shadow":
                command = cmd.StartShadow(config=config)
            elif name == "complete_shadow":
                command = cmd.CompleteShadow(config=config)
            elif name == "complete_burn_in":
                command = cmd.CompleteBurnIn(config=config)
            elif name == "replay_shadow":
                state = app.state()
                assert state.shadow is not None
                for i in range(config.shadow.min_samples - state.shadow.samples):
                    app.execute(cmd.RecordShadow(exact=True, similarity=1.0, query_id=f"replay-{i}"))
                return None
            else:
                raise AssertionError(name)
            return app.execute(command).events

        return step


class NoRouter:
    def __init__(self, home: Any, **kw: Any) -> None:
        pass

    def __enter__(self) -> NoRouter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    import adapters.evaluation.steps as evaluation
    import adapters.serving.router as router
    import adapters.training.students as training

    monkeypatch.setattr(training, "train_window", fake_train_window)
    monkeypatch.setattr(evaluation, "evaluate_baseline", fake_evaluate_baseline)
    monkeypatch.setattr(evaluation, "evaluate_candidate", fake_evaluate_candidate)
    monkeypatch.setattr(evaluation, "freeze_candidate", fake_freeze_candidate)
    monkeypatch.setattr(router, "Router", NoRouter)


def workspace(tmp_path: Path, config: EvoConfig = CFG) -> Path:
    home = tmp_path / "home"
    assert main(["--home", str(home), "init", "--period", str(config.evo_period_cycles)]) == 0
    (home / "config.toml").write_text(render_config(config))
    return home


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return workspace(tmp_path)


@pytest.fixture
def driver(home: Path) -> Iterator[LedgerDriver]:
    d = LedgerDriver(config=CFG)
    d.app = App(home)
    d.state = d.app.state()
    yield d
    d.app.close()


class MemoryLoop:
    """The workspace's records copied into the in-memory ledger (it passes the file ledger's
    contract suite, ``tests/ledger/contract.py``): the driver and the runner share it."""

    def __init__(self, home: Path):
        self.home = home
        self.ledger = MemoryLedger()
        self.file = (home / "ledger.jsonl").read_bytes()
        with Ledger(home) as f:
            self.ledger.append([r.event for r in f.records()])
        self.driver = LedgerDriver(config=CFG)
        self.driver.app = App(home, ledger=self.ledger)
        self.driver.state = self.driver.app.state()

    def run(self, lines: list[str] | None = None, **kw: Any) -> Any:
        say = lines.append if lines is not None else lambda _: None
        with Runner(self.home, say=say, progress=False, ledger=self.ledger) as runner:
            return runner.run(**kw)

    def kinds(self) -> list[str]:
        return [ev.event_name(r.event) for r in self.ledger.records()]


@pytest.fixture
def loop(home: Path) -> Iterator[MemoryLoop]:
    m = MemoryLoop(home)
    yield m
    m.driver.app.close()


def run(home: Path, lines: list[str] | None = None, **kw: Any) -> Any:
    with Runner(home, say=(lines.append if lines is not None else lambda _: None), progress=False) as runner:
        return runner.run(**kw)


# ---------------------------------------------------------------- the loop


def test_action_names_carry_their_key() -> None:
    assert action_name(TrainCandidate(candidate="Luna-G001-a-c2500")) == "TrainCandidate:Luna-G001-a-c2500"
    assert action_name(RankCandidates(window=3)) == "RankCandidates:3"


def test_every_action_of_the_core_has_its_handler() -> None:
    import importlib

    from adapters.runtime.perform import HANDLERS

    module = importlib.import_module("evo_core.reactions")
    actions = {c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Action) and c is not Action}
    assert actions and actions == set(HANDLERS)


def test_until_idle_does_the_window_then_returns(loop: MemoryLoop, fakes: None) -> None:
    driver = loop.driver
    driver.open_window()
    before = len(loop.kinds())
    lines: list[str] = []
    report = loop.run(lines, until_idle=True)
    assert report.phase == "proposed" and report.interrupted == "" and report.exit_code == 0
    names = list(report.performed)  # one turn per action, but the training: all at once
    candidates = [f"Luna-G001-{b}-c10" for b in "abc"]
    assert names == [
        "SpawnCandidates:1",
        *(f"TrainCandidate:{c}" for c in candidates),
        "EvaluateBaseline:1",
        *(f"EvaluateCandidate:{c}" for c in candidates),
        "RankCandidates:1",
        *(f"FreezeCandidate:{c}" for c in candidates),
        "ConcludeWindow:1",
    ]
    k = loop.kinds()
    assert k.count("TrainingFinished") == 3 and k.count("CandidateFrozen") == 3 and k[-1] == "Proposed"
    assert any("proposed Luna-G001-b-c10" in line for line in lines)  # a line per record
    ranked = next(i for i, line in enumerate(lines) if "ranked:" in line)  # then the spec's table
    assert lines[ranked + 1].strip().startswith("CANDIDATE RANKINGS (window 1")
    assert lines[ranked + 2].strip().startswith("1. Luna-G001-b-c10")
    assert any(line.startswith("phase window -> proposed") for line in lines)
    assert report.events == len(k) - before  # every record it appended, none a heartbeat

    assert (loop.home / "ledger.jsonl").read_bytes() == loop.file  # it all went to the in-memory ledger
    again = loop.run(until_idle=True)  # nothing due: the operator must approve
    assert again.performed == () and again.phase == "proposed"


def test_rollout_actions_go_to_adapters_rollout(loop: MemoryLoop, monkeypatch: pytest.MonkeyPatch, fakes: None) -> None:
    driver = loop.driver
    fake = Rollout(monkeypatch, CFG)
    driver.window([GOOD, BETTER, "fail"])
    driver.approve()
    report = loop.run(until_idle=True)
    assert fake.calls == ["start_shadow"] and report.phase == "shadow"  # its cycles are not over
    assert loop.run(until_idle=True).performed == ()  # nothing due until the heartbeats come
    driver.state = driver.app.state()
    for i in range(CFG.shadow.min_samples):
        driver.do(cmd.RecordShadow(exact=True, similarity=1.0, query_id=f"q{i}"))
    assert driver.state.shadow is not None
    driver.beat_to(driver.state.shadow.until_cycle)
    report = loop.run(until_idle=True)
    assert fake.calls == ["start_shadow", "complete_shadow"] and report.phase == "burn_in"
    assert report.head == "Luna-G001-b-c10"  # cut over
    driver.state = driver.app.state()
    driver.answers(20)
    assert driver.state.burn_in is not None
    driver.beat_to(driver.state.burn_in.until_cycle)
    report = loop.run(until_idle=True)
    assert fake.calls[-1] == "complete_burn_in" and report.phase == "idle"
    assert report.performed == ("CompleteBurnIn:Luna-G001-b-c10",)
    assert loop.kinds()[-1] == "BurnInPassed"


def test_self_approve_goes_to_the_rollout_when_autonomy_is_on(loop: MemoryLoop, monkeypatch: pytest.MonkeyPatch,
                                                             fakes: None) -> None:
    driver = loop.driver
    fake = Rollout(monkeypatch, CFG)
    fake.idle.add("self_approve")  # the grant does not verify: it appends nothing
    driver.do(cmd.ChangeAutonomy(enabled=True, operator="op", nonce=0, **SIGNED))
    driver.window([GOOD, BETTER, "fail"])
    report = loop.run(until_idle=True)
    assert fake.calls == ["self_approve"] and report.phase == "proposed"
    assert report.performed == (f"SelfApprove:{driver.state.proposal.hash if driver.state.proposal else ''}",)


def test_the_shadow_replay_runs_while_samples_are_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          fakes: None) -> None:
    config = CFG.model_copy(update={"shadow": CFG.shadow.model_copy(update={"replay": True, "min_samples": 3})})
    home = workspace(tmp_path, config)
    fake = Rollout(monkeypatch, config)
    with App(home) as app:
        d = LedgerDriver(config=config)
        d.app, d.state = app, app.state()
        d.window([GOOD, BETTER, "fail"])
        d.approve()
    report = run(home, until_idle=True)
    assert fake.calls == ["start_shadow", "replay_shadow"] and report.phase == "shadow"
    assert kinds(home).count("ShadowCompared") == 3
    assert run(home, until_idle=True).performed == ()  # enough samples: no second replay

    fake.idle.add("replay_shadow")  # a replay that records nothing is not tried again and again
    home2 = workspace(tmp_path / "2", config)
    with App(home2) as app:
        d = LedgerDriver(config=config)
        d.app, d.state = app, app.state()
        d.window([GOOD, BETTER, "fail"])
        d.approve()
    fake.calls.clear()
    run(home2, until_idle=True)
    assert fake.calls == ["start_shadow", "replay_shadow"]


# ---------------------------------------------------------------- waiting


def _in_thread(runner: Runner) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(runner.run()), daemon=True)
    thread.start()
    return thread, out


def _until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_an_action_that_does_nothing_waits_for_the_ledger_on_inotify_without_cpu(
    home: Path, driver: LedgerDriver, monkeypatch: pytest.MonkeyPatch, fakes: None
) -> None:
    fake = Rollout(monkeypatch, CFG)
    fake.idle.add("start_shadow")  # e.g. a refused approval appends nothing
    driver.window([GOOD, BETTER, "fail"])
    driver.approve()
    runner = Runner(home, say=lambda _: None, progress=False)
    thread, report = _in_thread(runner)
    try:
        assert _until(lambda: runner.watch is not None and fake.calls == ["start_shadow"])
        time.sleep(0.2)
        cpu0, wall0, wakeups0 = time.process_time(), time.monotonic(), runner.watch.wakeups  # type: ignore[union-attr]
        time.sleep(1.0)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        assert fake.calls == ["start_shadow"]  # not asked again: the ledger did not move
        assert cpu < 0.2 and wall >= 1.0, f"{cpu:.3f} s of CPU while waiting {wall:.2f} s"
        assert runner.watch is not None and runner.watch.kind == "inotify"
        assert runner.watch.wakeups == wakeups0  # asleep in select the whole second

        t0 = time.monotonic()  # another process appends: the runner wakes and asks again, once
        beat = subprocess.run([sys.executable, "-m", "adapters.cli", "--home", str(home), "heartbeat"],
                              capture_output=True, text=True, timeout=60)
        assert beat.returncode == 0, beat.stderr
        assert _until(lambda: fake.calls == ["start_shadow"] * 2, timeout=10)
        assert time.monotonic() - t0 < 10
        time.sleep(0.3)
        assert fake.calls == ["start_shadow"] * 2
        assert runner.watch.wakeups - wakeups0 <= 6  # a handful of inotify events, no polling
    finally:
        runner.stop()
        thread.join(10)
        runner.close()
    assert not thread.is_alive() and report and report[0].watch == "inotify"


def test_a_refused_step_ends_until_idle_but_the_daemon_says_why_and_waits_for_the_ledger(
    home: Path, driver: LedgerDriver, monkeypatch: pytest.MonkeyPatch, fakes: None
) -> None:
    from evo_core.errors import DomainError

    calls: list[int] = []

    def refused(app: App, config: EvoConfig, action: Any) -> list[ev.Event]:
        calls.append(1)
        raise DomainError("the approval's key is not trusted")

    Rollout(monkeypatch, CFG)
    monkeypatch.setattr(rollout, "start_shadow", refused)
    driver.window([GOOD, BETTER, "fail"])
    driver.approve()
    with pytest.raises(DomainError, match="not trusted"):
        Runner(home, say=lambda _: None, progress=False).run(until_idle=True)

    lines: list[str] = []
    runner = Runner(home, say=lines.append, progress=False)
    thread, report = _in_thread(runner)
    try:
        assert _until(lambda: runner.watch is not None and len(calls) == 2)
        time.sleep(0.5)
        assert len(calls) == 2 and thread.is_alive()  # alive, and not asking again and again
        assert any("not trusted" in line and "waiting for the ledger" in line for line in lines)
        driver.beat()
        assert _until(lambda: len(calls) == 3, timeout=10)  # the ledger moved: it asks again
    finally:
        runner.stop()
        thread.join(10)
        runner.close()
    assert not thread.is_alive() and report and report[0].exit_code == 0


def test_without_inotify_the_stat_fallback_wakes_it(home: Path, driver: LedgerDriver,
                                                    monkeypatch: pytest.MonkeyPatch, fakes: None) -> None:
    fake = Rollout(monkeypatch, CFG)
    fake.idle.add("start_shadow")
    driver.window([GOOD, BETTER, "fail"])
    driver.approve()
    runner = Runner(home, say=lambda _: None, progress=False, use_inotify=False)
    thread, report = _in_thread(runner)
    try:
        assert _until(lambda: runner.watch is not None and fake.calls == ["start_shadow"])
        cpu0 = time.process_time()
        time.sleep(1.0)
        assert time.process_time() - cpu0 < 0.2
        driver.beat()
        assert _until(lambda: fake.calls == ["start_shadow"] * 2, timeout=5)
    finally:
        runner.stop()
        thread.join(10)
        runner.close()
    assert report and report[0].watch == "stat"


# ---------------------------------------------------------------- signals


def test_sigint_during_training_records_the_interruption_and_the_next_run_retrains(
    home: Path, driver: LedgerDriver, monkeypatch: pytest.MonkeyPatch, fakes: None
) -> None:
    import adapters.training.students as training

    def interrupted(app: App, config: EvoConfig, candidates: list[str], **kw: Any) -> dict[str, TrainResult]:
        for c in candidates:
            app.execute(cmd.StartTraining(candidate=c))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)  # "training": the signal ends it
        raise AssertionError("the signal did not stop the runner")

    driver.open_window()
    monkeypatch.setattr(training, "train_window", interrupted)
    lines: list[str] = []
    report = run(home, lines, until_idle=True)
    assert report.interrupted == "SIGINT" and report.exit_code == 130
    record = json.loads((home / "ledger.jsonl").read_bytes().splitlines()[-1])["event"]
    assert record["type"] == "WorkInterrupted" and record["signal"] == "SIGINT"
    assert sorted(record["actions"]) == [f"TrainCandidate:Luna-G001-{b}-c10" for b in "abc"]
    assert any("stopped by SIGINT" in line for line in lines)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored

    monkeypatch.setattr(training, "train_window", fake_train_window)
    report = run(home, until_idle=True)
    assert report.phase == "proposed" and report.interrupted == ""
    attempts = [json.loads(line)["event"].get("attempt") for line in (home / "ledger.jsonl").read_bytes().splitlines()
                if json.loads(line)["event"]["type"] == "TrainingStarted"]
    assert sorted(attempts) == [1, 1, 1, 2, 2, 2]


def test_sigterm_while_waiting_stops_it_and_appends_nothing(home: Path, driver: LedgerDriver) -> None:
    before = (home / "ledger.jsonl").read_bytes()
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()
    t0 = time.monotonic()
    report = run(home)  # idle: waits for the ledger
    timer.join()
    assert report.interrupted == "SIGTERM" and report.exit_code == 143
    assert time.monotonic() - t0 < 10
    assert (home / "ledger.jsonl").read_bytes() == before  # nothing was in progress


# ---------------------------------------------------------------- the command


def test_evo_run_until_idle_json(home: Path, driver: LedgerDriver, fakes: None,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    driver.open_window()
    capsys.readouterr()
    assert main(["--home", str(home), "run", "--until-idle", "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["phase"] == "proposed" and report["interrupted"] == "" and report["performed"]
    assert "proposed Luna-G001-b-c10" in captured.err  # lines go to stderr with --json
    assert main(["--home", str(home), "run", "--until-idle"]) == 0
    assert "idle: phase proposed" in capsys.readouterr().out


def test_evo_run_without_a_workspace_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--home", str(tmp_path / "nowhere"), "run", "--until-idle"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("evo: error: no evo workspace") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    assert "--until-idle" in capsys.readouterr().out
