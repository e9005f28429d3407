"""README's independent verifier (examples/independent_verify.py: json, blake3 and cryptography
only) checks the chain and every operator signature of a real workspace's ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from evo_core import commands as cmd
from evo_core import events as ev
from ledger.store import Ledger
from tests.cli.conftest import Evo, LedgerDriver
from tests.core.helpers import SIGNED

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "independent_verify.py"


def run(home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(home / "ledger.jsonl")], capture_output=True, text=True)


def test_a_signed_history_verifies_and_forged_records_are_named(evo: Evo, driver: LedgerDriver) -> None:
    g1 = driver.promote()
    driver.window(["fail", "fail", "fail"])
    driver.do(cmd.Rollback(**SIGNED, operator="op", reason="back"))
    r = run(evo.home)
    assert r.returncode == 0, r.stdout
    assert evo("verify").code == 0

    with Ledger(evo.home) as ledger:  # what the agent can do: chain-valid, unsigned
        seq = ledger.append([ev.RolledBack(from_generation=driver.state.head or "", to_generation=g1, reason="x")]).seq
    r = run(evo.home)
    assert r.returncode == 1 and f"seq {seq}: signed by key ''" in r.stdout, r.stdout
    v = evo("verify")
    assert v.code == 1 and f"seq {seq}" in v.out


def test_a_signature_copied_into_a_rewritten_history_does_not_verify(evo: Evo, driver: LedgerDriver) -> None:
    driver.promote()
    events = [ev.decode_event(json.dumps(json.loads(line)["event"])) for line in (evo.home / "ledger.jsonl").open()]
    approved = next(i for i, e in enumerate(events) if isinstance(e, ev.Approved))
    # the agent rewrites the history before the approval (one record more, every hash after it
    # moves) and re-chains the rest, the operator's approval copied byte for byte
    home = evo.home.parent / "rewritten"
    home.mkdir()
    with Ledger(home) as ledger:
        ledger.append(events[:approved - 1])
        ledger.append([ev.WorkInterrupted(actions=(), signal="SIGTERM")])
        for e in events[approved - 1:]:
            ledger.append([e])
    r = run(home)
    assert r.returncode == 1 and "checkpoint" in r.stdout, r.stdout
