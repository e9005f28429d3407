"""CLI fixtures: a real workspace made by `evo init`, the CLI run in-process (``main(argv)``),
and the core's test Driver running the runner's commands through the real ledger."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from adapters.runtime.app import App
from adapters.cli import main
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import render_config
from tests import operator_key as test_key
from tests.core.helpers import CFG, Driver


@dataclass
class Result:
    code: int
    out: str
    err: str


class Evo:
    def __init__(self, home: Path, capsys: pytest.CaptureFixture[str]):
        self.home = home
        self.capsys = capsys

    def __call__(self, *args: str) -> Result:
        self.capsys.readouterr()
        try:
            code = main(["--home", str(self.home), *args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    @property
    def ledger_bytes(self) -> bytes:
        return (self.home / "ledger.jsonl").read_bytes()


class LedgerDriver(Driver):
    """The core's test Driver, but every command goes through App.execute (the real ledger,
    links and projection files), as the runner will do it; the commands marked ``SIGNED`` are
    signed by the test operator key (pinned by the workspace) at the ledger's real checkpoint,
    so the verified fold applies them and `evo verify` accepts them."""

    app: App
    key: Path | None = None

    def checkpoint(self) -> tuple[int, str]:
        cp = self.app.store.load().checkpoint
        return cp.seq, cp.hash

    def do(self, command: cmd.Command) -> list[ev.Event]:
        command = test_key.sign_marked(self.app.state(), command, self.checkpoint())
        outcome = self.app.execute(command)
        self.state = outcome.state
        self.events.extend(outcome.events)
        return outcome.events


class ArchivingDriver(LedgerDriver):
    """Freezes every candidate of a window into a read-only archive holding a copy of ``gguf``
    and records its hashes, as the runner's freeze does (what the router checks before it loads
    a generation's bytes)."""

    home: Path = Path()
    gguf: Path = Path()

    def freeze_all(self) -> None:
        from adapters.freeze.archive import seal
        from adapters.hashing import hash_file, hash_tree

        for cid in self.candidates():
            folder = self.home / "models" / "archive" / cid
            folder.mkdir(parents=True)
            shutil.copyfile(self.gguf, folder / "model.gguf")
            seal(folder)
            self.do(
                cmd.Freeze(
                    candidate=cid, archive=f"archive/{cid}", archive_hash=hash_tree(folder),
                    model_hash=hash_file(folder / "model.gguf"),
                )
            )


@pytest.fixture(autouse=True)
def _no_personal_operator_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's own key (``$EVO_OPERATOR_KEY``, ``~/.config/evo``) never leaks into a test."""
    monkeypatch.delenv("EVO_OPERATOR_KEY", raising=False)
    monkeypatch.delenv("EVO_OPERATOR_HOME", raising=False)  # the witness under $XDG_CONFIG_HOME/evo
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


@pytest.fixture
def evo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Evo:
    home = tmp_path / "home"
    runner = Evo(home, capsys)
    _, public = test_key.write_files(tmp_path / "operator")
    assert runner("init", "--period", str(CFG.evo_period_cycles), "--operator-key", str(public)).code == 0
    (home / "config.toml").write_text(render_config(CFG))  # the test config: short shadow, burn-in
    return runner


def trusted_operator_key(evo: Evo) -> Path:
    """The workspace's operator key, beside (outside) it: the test key it pinned at `evo init`."""
    return test_key.write_files(evo.home.parent / "operator")[0]


@pytest.fixture
def operator_key(evo: Evo) -> Path:
    return trusted_operator_key(evo)


@pytest.fixture
def driver(evo: Evo) -> Iterator[LedgerDriver]:
    d = LedgerDriver(config=CFG)
    d.key = trusted_operator_key(evo)
    d.app = App(evo.home)
    d.state = d.app.state()
    yield d
    d.app.close()
