"""Progress of long steps (issue 14): stderr lines, the activity file, and `evo status` naming the
step in progress, only from a running process and without ever changing what the ledger says."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.cli import main
from adapters.runtime import activity
from adapters.runtime.app import App
from adapters.runtime.perform import Turn, perform
from evo_core.reactions import Action, EvaluateCandidate
from tests.cli.conftest import Evo
from tests.core.helpers import CFG

GENESIS = "Luna-G000-genesis"


def _files(home: Path) -> list[str]:
    folder = activity.activity_dir(home)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: nothing runs under this pid now
    return proc.pid


def _write(home: Path, record: activity.Activity) -> Path:
    path = activity.activity_dir(home) / f"{record.pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.encode(record))
    return path


def _record(pid: int, **changes: Any) -> activity.Activity:
    import socket
    import time

    fields: dict[str, Any] = dict(
        what=f"exporting GGUF for {GENESIS}", step="export", subject=GENESIS, counting="export", done=12,
        total=40, pid=pid, pid_start=activity.start_ticks(pid), host=socket.gethostname(),
        started=time.time() - 80, updated=time.time(),
    )
    return activity.Activity(**{**fields, **changes})


# ---------------------------------------------------------------- evo status


def test_status_names_the_step_a_running_process_is_in(evo: Evo) -> None:
    assert "in progress" not in evo("status").out
    with activity.step(evo.home, "export", f"exporting GGUF for {GENESIS}", subject=GENESIS) as step:
        step("export", 12, 40)
        text = evo("status").out
        assert f"in progress: exporting GGUF for {GENESIS} (12/40 tensors, 0s), pid {os.getpid()}" in text
        assert text.splitlines()[0] == "phase: idle"
        assert text.splitlines()[1].startswith("in progress: ")  # right under the phase
        step("parity", 3, 8)  # a report of another step than the one opened is named
        view = json.loads(evo("status", "--json").out)
        assert view["in_progress"] == [
            {
                "pid": os.getpid(), "step": "export", "subject": GENESIS, "done": 3, "total": 8,
                "seconds": view["in_progress"][0]["seconds"],
                "text": f"exporting GGUF for {GENESIS} (parity 3/8 prompts, 0s)",
            }
        ]
    assert "in progress" not in evo("status").out
    assert json.loads(evo("status", "--json").out)["in_progress"] == []
    assert _files(evo.home) == []


def test_status_ignores_the_activity_file_of_a_process_that_is_gone(evo: Evo) -> None:
    dead = _dead_pid()
    _write(evo.home, _record(dead, pid_start=None))
    text = evo("status").out
    assert "in progress:" not in text
    assert f"activity file ignored: exporting GGUF for {GENESIS}: pid {dead} is not running\n" in text
    view = json.loads(evo("status", "--json").out)
    assert view["in_progress"] == [] and len(view["activity_ignored"]) == 1


def test_a_reused_pid_or_another_host_does_not_make_a_stale_file_live(evo: Evo) -> None:
    start = activity.start_ticks(os.getpid())
    assert start is not None  # Linux: /proc says when this process started
    _write(evo.home, _record(os.getpid(), pid_start=start + 1))  # this pid, but another process's start
    view = json.loads(evo("status", "--json").out)
    assert view["in_progress"] == []
    assert view["activity_ignored"] == [
        f"exporting GGUF for {GENESIS}: pid {os.getpid()} is another process now"
    ]
    _write(evo.home, _record(os.getpid(), host="elsewhere"))
    assert json.loads(evo("status", "--json").out)["in_progress"] == []
    (activity.activity_dir(evo.home) / "junk.json").write_text("{not json")
    assert "activity file ignored: junk.json: unreadable\n" in evo("status").out


def test_an_activity_file_cannot_change_what_status_says_of_the_ledger(evo: Evo) -> None:
    evo("heartbeat", "--cycle", str(CFG.evo_period_cycles))  # a window opens: phase window
    before = json.loads(evo("status", "--json").out)
    ledger = evo.ledger_bytes
    lie = _record(
        os.getpid(), what="promoting Luna-G999 to HEAD", step="cutover", subject="Luna-G999", counting="",
        done=None, total=None,
    )
    _write(evo.home, lie)
    after = json.loads(evo("status", "--json").out)
    assert [p["text"].split(" (")[0] for p in after["in_progress"]] == ["promoting Luna-G999 to HEAD"]
    for key in ("in_progress", "activity_ignored"):
        after.pop(key), before.pop(key)
    assert after == before  # phase, HEAD, the window, what is due: all the ledger's
    assert after["phase"] == "window" and after["head"] == GENESIS
    assert evo.ledger_bytes == ledger
    # as of a past record, only the ledger speaks
    past = json.loads(evo("status", "--json", "--at-seq", "0").out)
    assert past["in_progress"] == [] and past["activity_ignored"] == []


# ---------------------------------------------------------------- the activity file


def test_the_activity_file_follows_nested_steps_and_is_gone_after_an_exception(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    mine = f"{os.getpid()}.json"
    with activity.step(home, "train", "training window 1") as outer:
        assert _files(home) == [mine]
        with pytest.raises(RuntimeError, match="boom"):
            with activity.step(home, "export", "exporting GGUF for C") as inner:
                inner("export", 1, 4)
                assert activity.current() is inner
                live, _ = activity.read_all(home)
                assert [(a.what, a.done, a.total) for a in live] == [("exporting GGUF for C", 1, 4)]
                raise RuntimeError("boom")
        assert activity.current() is outer
        live, _ = activity.read_all(home)
        assert [a.what for a in live] == ["training window 1"]  # the outer step again
    assert _files(home) == []
    outer("train", 5, 10)  # a report after its step ended writes nothing
    assert _files(home) == []
    assert activity.current() is activity.silent
    with pytest.raises(KeyError):
        with activity.step(home, "export", "exporting"):
            raise KeyError("x")
    assert _files(home) == []


def test_a_new_step_sweeps_the_files_of_dead_processes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    dead = _write(home, _record(_dead_pid(), pid_start=None))
    live = _write(home, _record(os.getppid(), pid_start=None))  # pytest's parent: running
    with activity.step(home, "copy", "copying"):
        assert not dead.exists() and live.exists()


def test_perform_names_the_action_in_progress_and_clears_it_after_a_failure(evo: Evo) -> None:
    seen: list[list[str]] = []

    def handler(turn: Turn, actions: Any) -> None:
        activity.current()("probes", 2, 5)  # what an evaluation reports to its step
        live, _ = activity.read_all(turn.app.ws.home)
        seen.append([a.describe(a.started) for a in live])
        if len(seen) == 2:
            raise RuntimeError("the handler failed")

    action: Action = EvaluateCandidate(candidate="Luna-G001-a-c10")
    with App(evo.home) as app:
        turn = Turn(app=app, config=CFG)
        perform(turn, [action], {EvaluateCandidate: handler})
        assert _files(evo.home) == []
        with pytest.raises(RuntimeError):
            perform(turn, [action], {EvaluateCandidate: handler})
        assert _files(evo.home) == []
    assert seen == [["evaluating candidate Luna-G001-a-c10 (2/5 probes, 0s)"]] * 2


def test_the_training_tally_counts_steps_and_candidates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from adapters.training.students import TrainingTally

    monkeypatch.setattr(activity, "WRITE_EVERY_S", 0.0)  # every report written (else once a second)

    home = tmp_path / "home"
    with activity.step(home, "train", "training window 3: the teachers' outputs") as step:
        tally = TrainingTally(3, ["a", "b"], step)
        tally.describe()
        tally.progress("a", {"step": 10, "steps": 10})
        tally.progress("b", {"step": 4, "steps": 10})
        (live,), _ = activity.read_all(home)
        assert live.describe(live.started) == (
            "training window 3: 0/2 candidates done, 1 exporting GGUF (14/20 steps, 0s)"
        )
        tally.progress("a", {"candidate": "a", "export": "parity", "done": 3, "total": 8})  # the worker's export
        (live,), _ = activity.read_all(home)
        assert live.what == "training window 3: 0/2 candidates done, 1 exporting GGUF (a parity 3/8 prompts)"
        tally.finished("a")
        (live,), _ = activity.read_all(home)
        assert live.what == "training window 3: 1/2 candidates done"


# ---------------------------------------------------------------- stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stderr_progress_prints_tenths_in_logs_and_redraws_on_a_terminal() -> None:
    log = io.StringIO()
    echo = activity.StderrProgress(log, width=10, every_s=0)
    echo.begin("exporting GGUF for X")
    for i in range(41):
        echo("export", i, 40)
    echo.end("exporting GGUF for X")
    lines = log.getvalue().splitlines()
    assert lines[0] == "exporting GGUF for X..."
    assert lines[1] == "  export [..........] 0/40 tensors"
    assert lines[-2] == "  export [##########] 40/40 tensors"
    assert len(lines) == 1 + 11 + 1  # start, each tenth, end
    assert lines[-1].startswith("exporting GGUF for X: done in ")

    quiet = io.StringIO()  # a step faster than every_s: its start and its end only
    echo = activity.StderrProgress(quiet)
    echo.begin("hashing")
    for i in range(11):
        echo("hash", i, 10)
    echo.end("hashing")
    assert [line.split(" in ")[0] for line in quiet.getvalue().splitlines()] == ["hashing...", "hashing: done"]

    tty = _Terminal()
    echo = activity.StderrProgress(tty, width=4)
    echo.begin("copying")
    echo("copy", 1, 2)
    echo("copy", 2, 2)
    echo.end("copying", "FAILED")
    assert tty.getvalue().startswith("copying...\n\r\x1b[2K  copy [##..] 1/2 files\r\x1b[2K  copy [####] 2/2 files")
    assert "\r\x1b[2Kcopying: FAILED in 0s\n" in tty.getvalue()


# ---------------------------------------------------------------- evo init


def _base_model(demo_genesis: Path, folder: Path) -> Path:
    folder.mkdir()
    for path in (demo_genesis / "weights").iterdir():
        shutil.copyfile(path, folder / path.name)  # plain copies: the archive's are read-only
    return folder


def test_init_prints_each_step_on_stderr_and_leaves_no_activity_file(
    demo_genesis: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _base_model(demo_genesis, tmp_path / "base")
    home = tmp_path / "home"
    capsys.readouterr()
    assert main(["--home", str(home), "init", "--base-model", str(base)]) == 0
    err = capsys.readouterr().err.splitlines()
    starts = [line for line in err if line.endswith("...")]
    assert starts == [
        f"copying {base} into {GENESIS}...",
        f"hashing the weights of {GENESIS}...",
        f"exporting GGUF for {GENESIS} and checking its parity...",
        f"sealing the archive of {GENESIS}...",
    ]
    ends = [line.split(" in ")[0] for line in err if ": done in " in line]
    assert ends == [s[:-3] + ": done" for s in starts]
    assert _files(home) == []


def test_a_failed_init_step_says_so_and_leaves_no_activity_file(
    demo_genesis: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters.serving import gguf_export

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise gguf_export.ExportError("the export broke")

    monkeypatch.setattr(gguf_export, "export_generation", broken)
    base = _base_model(demo_genesis, tmp_path / "base")
    home = tmp_path / "home"
    capsys.readouterr()
    assert main(["--home", str(home), "init", "--base-model", str(base)]) == 1
    err = capsys.readouterr().err
    assert f"exporting GGUF for {GENESIS} and checking its parity: FAILED in " in err
    assert "evo: error: the export broke" in err
    assert _files(home) == []
