"""Only the operator approves: `evo keygen`, signed `evo approve` / `reject` / `autonomy`, and
every way a signature can be wrong. Each refusal exits 1 with one line, appends exactly one
ApprovalRefused record and changes nothing else."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from adapters.operator import signing
from adapters.runtime.app import App
from adapters.cli.operator import add_trusted_key
from evo_core import commands as cmd
from evo_core.config import parse_config
from evo_core.state import Phase, State
from tests.cli.conftest import Evo, LedgerDriver
from tests.cli.test_cli import append_out_of_band
from tests.core.helpers import GOOD


def records(home: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (home / "ledger.jsonl").read_bytes().splitlines()]


def state_of(home: Path) -> State:
    with App(home) as app:
        return app.state()


def key_id_of(key: Path) -> str:
    return signing.key_id(signing.public_raw(signing.load_private(key)))


def assert_refused(evo: Evo, *argv: str, says: str) -> dict[str, Any]:
    """Run a command that must be refused; return the one ApprovalRefused event it appended."""
    before, state = records(evo.home), state_of(evo.home)
    r = evo(*argv)
    assert r.code == 1, (r.out, r.err)
    assert r.err.startswith("evo: error: ") and r.err.count("\n") == 1, r.err
    assert says in r.err, r.err
    after = records(evo.home)
    assert after[:-1] == before and len(after) == len(before) + 1
    refused: dict[str, Any] = after[-1]["event"]
    assert refused["type"] == "ApprovalRefused" and refused["reason"] in r.err
    assert state_of(evo.home) == state  # recorded for auditors, nothing else changed
    return refused


@pytest.fixture
def proposed(evo: Evo, driver: LedgerDriver) -> str:
    driver.window([GOOD, GOOD, GOOD])
    assert driver.state.proposal is not None
    return driver.state.proposal.hash


# ---------------------------------------------------------------- keygen


def test_keygen_writes_the_key_outside_and_trusts_it_keeping_the_config(evo: Evo, tmp_path: Path) -> None:
    config = evo.home / "config.toml"
    original = config.read_text()
    key = tmp_path / "keys" / "alice.key"
    r = evo("keygen", "--out", str(key), "--comment", "alice", "--trust")
    assert r.code == 0, r.err
    kid = key_id_of(key)
    line = (tmp_path / "keys" / "alice.key.pub").read_text().strip()
    assert kid in r.out and line in r.out
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    text = config.read_text()
    assert parse_config(text).approval.trusted_keys == (line,)
    assert [x for x in text.splitlines() if x.startswith("#")] == [x for x in original.splitlines() if x.startswith("#")]
    r = evo("keygen", "--out", str(key), "--trust")  # never overwrites
    assert r.code == 1 and "already exists" in r.err and config.read_text() == text


def test_keygen_refuses_a_path_inside_the_workspace(evo: Evo, tmp_path: Path) -> None:
    before = sorted(p.name for p in evo.home.iterdir())
    r = evo("keygen", "--out", str(evo.home / "operator.key"))
    assert r.code == 1 and "inside the workspace" in r.err and r.err.count("\n") == 1
    (tmp_path / "sneaky").symlink_to(evo.home)  # through a link: still the workspace
    r = evo("keygen", "--out", str(tmp_path / "sneaky" / "models" / "k.key"))
    assert r.code == 1 and "inside the workspace" in r.err
    assert sorted(p.name for p in evo.home.iterdir()) == before
    assert not (evo.home / "models" / "k.key").exists()


def test_keygen_trust_needs_a_workspace_and_writes_nothing_without_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = Evo(tmp_path / "no-home", capsys)
    r = nowhere("keygen", "--out", str(tmp_path / "k.key"), "--trust")
    assert r.code == 1 and "no evo workspace" in r.err
    assert not (tmp_path / "k.key").exists()
    r = nowhere("keygen", "--out", str(tmp_path / "k.key"))  # without --trust a workspace is not needed
    assert r.code == 0 and "trusted_keys" in r.out


@pytest.mark.parametrize(
    "toml",
    [
        'agent_name = "Luna"  # the agent\n',
        '[approval]\nautonomous = false\n',
        '[approval]\ntrusted_keys = []\n[train]\nsteps = 3\n',
        '[approval]  # who\ntrusted_keys = ["ed25519:%s old"]  # bob\n' % ("a" * 64),
        '[approval]\ntrusted_keys = [\n  "ed25519:%s bob", # bob ] [\n  # carol left\n]\nautonomous = false\n' % ("a" * 64),
        '[approval]\ntrusted_keys = [\n  "ed25519:%s bob"  # no comma\n]\n' % ("a" * 64),
    ],
)
def test_add_trusted_key_keeps_everything_else(toml: str) -> None:
    entry = "ed25519:" + "b" * 64 + " new"
    out = add_trusted_key(toml, entry)
    keys = parse_config(out).approval.trusted_keys
    assert keys[-1] == entry and len(keys) == len(parse_config(toml).approval.trusted_keys) + 1
    for line in toml.splitlines():
        if "#" in line:
            assert line[line.index("#"):] in out  # comments kept


# ---------------------------------------------------------------- approve, reject


def test_a_signed_approval_verifies_and_evo_verify_agrees(evo: Evo, proposed: str, operator_key: Path) -> None:
    r = evo("approve", "--key", str(operator_key), "--operator", "alice")
    assert r.code == 0, r.err
    approved = records(evo.home)[-1]["event"]
    assert approved["type"] == "Approved" and approved["key_id"] == key_id_of(operator_key)
    assert approved["proposal_hash"] == proposed
    with App(evo.home) as app:
        assert signing.approval_problem(app.ws.load_config(), signing.ledger_id(app), app.state()) is None
    assert evo("verify").code == 0


def test_offline_signing_prints_the_message_and_takes_the_signature(evo: Evo, proposed: str, operator_key: Path) -> None:
    before = records(evo.home)
    r = evo("approve", "--print-message")
    assert r.code == 0 and records(evo.home) == before
    assert r.out == f"evo-approve-v1\n{before[0]['hash']}\n{proposed}\n"
    signature = signing.sign(signing.load_private(operator_key), r.out.encode())
    r = evo("approve", "--signature", signature, "--key-id", key_id_of(operator_key))
    assert r.code == 0, r.err
    assert state_of(evo.home).phase is Phase.APPROVED


def test_a_signed_rejection_closes_the_evolution(evo: Evo, proposed: str, operator_key: Path) -> None:
    r = evo("reject", "--reason", "too chatty", "--key", str(operator_key))
    assert r.code == 0, r.err
    rejected = records(evo.home)[-1]["event"]
    assert rejected["type"] == "Rejected" and rejected["key_id"] == key_id_of(operator_key)
    assert evo("verify").code == 0


def test_a_forged_signature_is_refused_and_recorded(evo: Evo, proposed: str, operator_key: Path) -> None:
    kid = key_id_of(operator_key)
    refused = assert_refused(
        evo, "approve", "--signature", "ab" * 64, "--key-id", kid, "--operator", "mallory", says="does not verify"
    )
    assert refused["action"] == "approve" and refused["proposal_hash"] == proposed
    assert refused["key_id"] == kid and refused["operator"] == "mallory"
    good = signing.sign(signing.load_private(operator_key), signing.approval_message(records(evo.home)[0]["hash"], "approve", proposed))
    tampered = ("0" if good[0] != "0" else "1") + good[1:]
    assert_refused(evo, "reject", "--reason", "x", "--signature", tampered, "--key-id", kid, says="does not verify")
    assert evo("approve", "--signature", good, "--key-id", kid).code == 0  # the refusals changed nothing


def test_a_key_the_config_does_not_trust_is_refused(evo: Evo, proposed: str, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger" / "s.key"
    assert evo("keygen", "--out", str(stranger)).code == 0  # not --trust
    refused = assert_refused(evo, "approve", "--key", str(stranger), says="is not trusted")
    assert refused["key_id"] == key_id_of(stranger)
    assert "evo keygen --trust" in evo("approve", "--key", str(stranger)).err  # says how to fix it


def test_a_replayed_approval_of_an_old_proposal_is_refused(evo: Evo, driver: LedgerDriver, operator_key: Path) -> None:
    driver.window([GOOD, GOOD, GOOD])
    assert driver.state.proposal is not None
    old = driver.state.proposal.hash
    assert evo("approve", "--key", str(operator_key)).code == 0
    old_signature = records(evo.home)[-1]["event"]["signature"]
    driver.state = driver.app.state()
    driver.rollback()  # the approved rollout is aborted; the next window proposes again
    driver.window([GOOD, GOOD, GOOD])
    assert driver.state.proposal is not None
    new = driver.state.proposal.hash
    assert new != old
    kid = key_id_of(operator_key)
    refused = assert_refused(
        evo, "approve", "--signature", old_signature, "--key-id", kid, says=f"does not verify for proposal {new[:16]}"
    )
    assert refused["proposal_hash"] == new
    refused = assert_refused(
        evo, "approve", "--proposal", old, "--signature", old_signature, "--key-id", kid, says="not the pending one"
    )
    assert refused["proposal_hash"] == old


def test_a_tampered_raw_approval_is_caught_by_the_runner_check_and_evo_verify(
    evo: Evo, proposed: str, operator_key: Path
) -> None:
    """The agent writes an Approved record itself: it signs nothing, so it either names another
    proposal than the one it approves, or carries no or a wrong signature."""
    lid = records(evo.home)[0]["hash"]
    other = "0" * 64
    signature = signing.sign(signing.load_private(operator_key), signing.approval_message(lid, "approve", other))
    seq = append_out_of_band(
        evo.home,
        '{"type":"Approved","proposal_hash":"%s","operator":"luna","signature":"%s","key_id":"%s"}'
        % (other, signature, key_id_of(operator_key)),
    )
    with App(evo.home) as app:
        state = app.state()
        assert state.phase is Phase.APPROVED
        problem = signing.approval_problem(app.ws.load_config(), lid, state)
        assert problem is not None and f"does not verify for proposal {proposed[:16]}" in problem
        r = evo("verify")
        assert r.code == 1 and f"seq {seq}" in r.out and "names proposal 0000000000000000" in r.out
        # the runner withdraws it (ApprovalRefused): verify then passes, keeping a note of it
        app.execute(cmd.RefuseApproval(action="approve", operator="evo", reason=problem, proposal_hash=proposed))
    assert state_of(evo.home).phase is Phase.PROPOSED
    r = evo("verify")
    assert r.code == 0 and f"seq {seq}: Approved" in r.err and "withdrawn" in r.err


def test_an_unsigned_raw_approval_is_reported(evo: Evo, proposed: str) -> None:
    seq = append_out_of_band(
        evo.home, '{"type":"Approved","proposal_hash":"%s","operator":"luna","signature":"","key_id":""}' % proposed
    )
    with App(evo.home) as app:
        problem = signing.approval_problem(app.ws.load_config(), signing.ledger_id(app), app.state())
    assert problem is not None and problem.startswith("unsigned")
    r = evo("verify")
    assert r.code == 1 and f"seq {seq}: Approved: unsigned" in r.out


def test_a_key_file_others_can_read_is_refused_before_anything_is_appended(
    evo: Evo, proposed: str, operator_key: Path
) -> None:
    os.chmod(operator_key, 0o644)
    before = evo.ledger_bytes
    r = evo("approve", "--key", str(operator_key))
    assert r.code == 1 and "too open" in r.err and "chmod 600" in r.err and r.err.count("\n") == 1
    r = evo("approve", "--key", str(operator_key.parent / "missing.key"))
    assert r.code == 1 and "no such key file" in r.err
    assert evo.ledger_bytes == before


def test_signing_options_misused_are_usage_errors(evo: Evo, proposed: str, operator_key: Path) -> None:
    before = evo.ledger_bytes
    assert evo("approve", "--signature", "ab" * 64).code == 2  # no --key-id
    assert evo("approve", "--key", str(operator_key), "--signature", "ab" * 64, "--key-id", "x").code == 2
    assert evo("autonomy", "maybe", "--key", str(operator_key)).code == 2
    assert evo.ledger_bytes == before


# ---------------------------------------------------------------- autonomy


def test_autonomy_is_signed_per_nonce_and_an_old_grant_cannot_be_replayed(evo: Evo, operator_key: Path) -> None:
    key = str(operator_key)
    r = evo("autonomy", "on", "--key", key)
    assert r.code == 0 and "approval.autonomous" not in r.out and "autonomous is false" in r.err  # both needed
    on = records(evo.home)[-1]["event"]
    assert on["type"] == "AutonomyChanged" and on["enabled"] and on["nonce"] == 0
    assert evo("autonomy", "off", "--key", key).code == 0
    assert state_of(evo.home).autonomy is False
    refused = assert_refused(
        evo, "autonomy", "on", "--signature", on["signature"], "--key-id", on["key_id"],
        says="replayed: this signature is for autonomy on at nonce 0, the next change is nonce 2",
    )
    assert refused["action"] == "autonomy" and refused["proposal_hash"] == ""
    before = evo.ledger_bytes
    r = evo("autonomy", "off", "--key", key)  # nothing to change: not a signature problem
    assert r.code == 1 and "already off" in r.err and evo.ledger_bytes == before
    assert evo("verify").code == 0


def test_autonomy_by_an_untrusted_key_is_refused(evo: Evo, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.key"
    assert evo("keygen", "--out", str(stranger)).code == 0
    assert_refused(evo, "autonomy", "on", "--key", str(stranger), says="is not trusted")
    assert state_of(evo.home).autonomy is False
