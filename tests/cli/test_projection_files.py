"""When the projection files are rebuilt: after each change, once per window step, and by
`evo status` only when one was deleted (a status must not rewrite files on every call)."""

from __future__ import annotations

import os

import pytest

import adapters.runtime.materialize
from evo_core import commands as cmd
from tests.cli.conftest import Evo, LedgerDriver
from tests.core.helpers import GOOD


def test_a_run_of_commands_rebuilds_the_files_once(
    evo: Evo, driver: LedgerDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = adapters.runtime.materialize.materialize
    monkeypatch.setattr(adapters.runtime.materialize, "materialize", lambda *a: calls.append(1) or real(*a))
    driver.open_window()
    calls.clear()
    with driver.app.deferred():
        driver.do(cmd.SpawnCandidates(config=driver.config))
        for cid in driver.candidates():
            driver.do(cmd.StartTraining(candidate=cid))
        assert calls == []
    assert calls == [1]
    assert "TRAINING" in (evo.home / "models" / "lineage.csv").read_text()


def test_the_files_are_rebuilt_even_when_a_command_fails_midway(evo: Evo, driver: LedgerDriver) -> None:
    driver.open_window()
    lineage = evo.home / "models" / "lineage.csv"
    with pytest.raises(Exception), driver.app.deferred():
        driver.do(cmd.SpawnCandidates(config=driver.config))
        driver.do(cmd.Rank())  # nothing is trained yet: refused
    assert "Luna-G001-a" in lineage.read_text()


def test_status_leaves_the_files_alone_but_rewrites_a_deleted_one(evo: Evo, driver: LedgerDriver) -> None:
    driver.window([GOOD, GOOD, GOOD])
    lineage = evo.home / "models" / "lineage.csv"
    before = lineage.stat().st_mtime_ns
    os.utime(lineage, ns=(before - 10**9, before - 10**9))
    assert evo("status").code == 0
    assert lineage.stat().st_mtime_ns == before - 10**9
    lineage.unlink()
    assert evo("status").code == 0
    assert "Luna-G001-a" in lineage.read_text()
