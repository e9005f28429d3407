"""`evo verify --deep`: every archive the ledger names is re-hashed against its event and its
hashes.csv; a changed byte fails it (exit 1) while the plain verify still passes."""

from __future__ import annotations

import json
import os
from pathlib import Path

from adapters.freeze import freeze
from adapters.runtime.workspace import Workspace
from evo_core import commands as cmd
from tests.cli.conftest import Evo, LedgerDriver
from tests.core.helpers import BAD_RECALL_LAWS, GENESIS, GOOD
from tests.freeze.conftest import make_work, ranked_window


def _flip_a_byte(path: Path) -> None:
    os.chmod(path.parent, 0o755)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))


def test_deep_verify_catches_a_changed_genesis_archive(evo: Evo) -> None:
    assert evo("verify", "--deep").code == 0
    _flip_a_byte(evo.home / "models" / "archive" / GENESIS / "GENESIS.md")
    assert evo("verify").code == 0  # the ledger itself is intact
    r = evo("verify", "--deep")
    assert r.code == 1
    assert f"archive of {GENESIS}" in r.err and "does not match the recorded" in r.err
    report = json.loads(evo("verify", "--deep", "--json").out)
    assert report["ok"] is False and report["first_bad_seq"] == 1  # seq 0 pins the operator key


def test_deep_verify_checks_every_frozen_candidate(evo: Evo, driver: LedgerDriver, tmp_path: Path) -> None:
    ranked_window([GOOD, BAD_RECALL_LAWS, "breach"], driver)
    ws = Workspace(evo.home)
    frozen = {}
    for c in driver.state.window_candidates():
        fa = freeze(
            ws, c, window=driver.state.window, head_metrics=None,
            work_dir=make_work(tmp_path / c.id, weights=c.branch != "c"),
        )
        driver.do(cmd.Freeze(candidate=c.id, archive=fa.archive, archive_hash=fa.archive_hash,
                             model_hash=fa.model_hash, manifest_hash=fa.manifest_hash))
        frozen[c.id] = fa
    driver.conclude()
    r = evo("verify", "--deep")
    assert r.code == 0, r.err
    victim = next(iter(frozen))
    _flip_a_byte(frozen[victim].path / "metrics.json")
    r = evo("verify", "--deep")
    assert r.code == 1
    assert f"archive of {victim}" in r.err and "metrics.json does not match hashes.csv" in r.err
    assert sum(f"archive of {c}" in r.err for c in frozen) == 1  # only the changed one


def test_deep_verify_names_a_missing_archive(evo: Evo, driver: LedgerDriver) -> None:
    driver.window([GOOD, GOOD, GOOD])  # the core's Driver records fake archives: none on disk
    r = evo("verify", "--deep")
    assert r.code == 1 and "archive folder missing" in r.err
    assert evo("verify").code == 0
