"""Only the operator approves: `evo keygen`, signed `evo approve` / `reject` / `autonomy`, and
every way a signature can be wrong. Each refusal exits 1 with one line, appends exactly one
ApprovalRefused record and changes nothing else; a record the agent appends itself is flagged
by the verified fold (never acted on) and named by `evo verify`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from adapters.operator import signing
from adapters.runtime.app import App
from evo_core import authority
from evo_core import events as ev
from evo_core.state import Phase, State
from ledger.store import Ledger
from tests.cli.conftest import Evo, LedgerDriver
from tests.core.helpers import GOOD


def records(home: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (home / "ledger.jsonl").read_bytes().splitlines()]


def state_of(home: Path) -> State:
    with App(home) as app:
        return app.state()


def key_id_of(key: Path) -> str:
    return signing.key_id(signing.public_raw(signing.load_private(key)))


def tail(home: Path) -> tuple[int, str]:
    last = records(home)[-1]
    return last["seq"], last["hash"]


def append_raw(home: Path, event: ev.Event) -> int:
    """A chain-valid record appended with the project's own ledger code, bypassing `decide`:
    what the agent can do. Returns its seq."""
    with Ledger(home) as ledger:
        return ledger.append([event]).seq


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
    assert f"recorded as ApprovalRefused, seq {after[-1]['seq']}" in r.err
    # recorded for auditors, nothing else changed
    assert _without_count(state_of(evo.home)) == _without_count(state)
    return refused


def _without_count(state: State) -> State:
    from msgspec.structs import replace

    return replace(state, records=0)


def assert_unchanged(evo: Evo, code: int, *argv: str, says: str) -> str:
    """Run a command that must fail with ``code`` and one line, appending nothing."""
    before = evo.ledger_bytes
    r = evo(*argv)
    assert r.code == code, (r.out, r.err)
    assert says in r.err, r.err
    if code == 1:
        assert r.err.startswith("evo: error: ") and r.err.count("\n") == 1, r.err
    assert evo.ledger_bytes == before
    return r.err


@pytest.fixture
def proposed(evo: Evo, driver: LedgerDriver) -> str:
    driver.window([GOOD, GOOD, GOOD])
    assert driver.state.proposal is not None
    return driver.state.proposal.hash


def expected_message(home: Path, action: str = "approve") -> bytes:
    with App(home) as app:
        state = app.state()
        cp = app.store.load().checkpoint
    return authority.proposal_message(state, action, cp.seq, cp.hash)


# ---------------------------------------------------------------- keygen


def test_keygen_writes_a_0600_key_outside_and_trusts_nothing(evo: Evo, tmp_path: Path) -> None:
    config = evo.home / "config.toml"
    original, ledger = config.read_text(), evo.ledger_bytes
    key = tmp_path / "keys" / "alice.key"
    r = evo("keygen", "--out", str(key), "--comment", "alice")
    assert r.code == 0, r.err
    kid = key_id_of(key)
    line = (tmp_path / "keys" / "alice.key.pub").read_text().strip()
    assert line.endswith(" alice") and kid in r.out
    assert "evo init --operator-key" in r.out and "evo trust add" in r.out
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert config.read_text() == original and evo.ledger_bytes == ledger  # a new key is trusted by no one
    assert kid not in state_of(evo.home).keys
    r = evo("keygen", "--out", str(key))  # never overwrites
    assert r.code == 1 and "already exists" in r.err and (tmp_path / "keys" / "alice.key.pub").read_text().strip() == line
    r = evo("keygen", "--out", str(tmp_path / "k2.key"), "--trust")  # gone: a usage error, nothing written
    assert r.code == 2 and not (tmp_path / "k2.key").exists()


def test_keygen_refuses_a_path_inside_the_workspace(evo: Evo, tmp_path: Path) -> None:
    before = sorted(p.name for p in evo.home.iterdir())
    r = evo("keygen", "--out", str(evo.home / "operator.key"))
    assert r.code == 1 and "inside the workspace" in r.err and r.err.count("\n") == 1
    (tmp_path / "sneaky").symlink_to(evo.home)  # through a link: still the workspace
    r = evo("keygen", "--out", str(tmp_path / "sneaky" / "models" / "k.key"))
    assert r.code == 1 and "inside the workspace" in r.err
    assert sorted(p.name for p in evo.home.iterdir()) == before
    assert not (evo.home / "models" / "k.key").exists()


def test_keygen_needs_no_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nowhere = Evo(tmp_path / "no-home", capsys)
    r = nowhere("keygen", "--out", str(tmp_path / "k.key"))
    assert r.code == 0, r.err
    assert (tmp_path / "k.key").exists() and not (tmp_path / "no-home").exists()


# ---------------------------------------------------------------- approve, reject


def test_a_signed_approval_verifies_and_evo_verify_agrees(evo: Evo, proposed: str, operator_key: Path) -> None:
    seq, digest = tail(evo.home)
    r = evo("approve", "--key", str(operator_key), "--operator", "alice")
    assert r.code == 0, r.err
    approved = records(evo.home)[-1]["event"]
    assert approved["type"] == "Approved" and approved["key_id"] == key_id_of(operator_key)
    assert approved["proposal_hash"] == proposed and approved["operator"] == "alice"
    assert (approved["checkpoint_seq"], approved["checkpoint_hash"]) == (seq, digest)  # what the operator saw
    state = state_of(evo.home)
    assert state.phase is Phase.APPROVED and not state.flagged
    r = evo("verify")
    assert r.code == 0 and r.out.startswith("ok: "), (r.out, r.err)


def test_offline_signing_prints_the_message_and_takes_the_signature(evo: Evo, proposed: str, operator_key: Path) -> None:
    before = evo.ledger_bytes
    r = evo("approve", "--print-message")
    assert r.code == 0 and evo.ledger_bytes == before
    seq, digest = tail(evo.home)
    with App(evo.home) as app:
        state = app.state()
    assert state.proposal is not None
    cand = state.candidates[state.proposal.proposal.candidate]
    lid = records(evo.home)[0]["hash"]
    assert r.out == (
        f"evo-approve-v2\n{lid}\n{proposed}\n{cand.id}\n{cand.archive_hash}\n{cand.model_hash}\n{seq}:{digest}\n"
    )
    j = evo("approve", "--print-message", "--json")
    assert j.code == 0 and json.loads(j.out) == {"message": r.out, "checkpoint": f"{seq}:{digest}"}
    signature = signing.sign(signing.load_private(operator_key), r.out.encode())
    kid = key_id_of(operator_key)
    # the signature without the checkpoint it signed is a usage error
    assert_unchanged(evo, 2, "approve", "--signature", signature, "--key-id", kid, says="--checkpoint")
    r = evo("approve", "--signature", signature, "--key-id", kid, "--checkpoint", f"{seq}:{digest}")
    assert r.code == 0, r.err
    assert state_of(evo.home).phase is Phase.APPROVED
    assert evo("verify").code == 0


def test_an_offline_signature_for_another_checkpoint_is_refused(evo: Evo, proposed: str, operator_key: Path) -> None:
    private, kid = signing.load_private(operator_key), key_id_of(operator_key)
    seq, digest = tail(evo.home)
    signature = signing.sign(private, expected_message(evo.home))
    # given with another checkpoint than the one signed: it does not verify
    assert_refused(evo, "approve", "--signature", signature, "--key-id", kid, "--checkpoint", f"{seq - 1}:{digest}",
                   says="does not verify")
    # signed for real, but for a checkpoint this ledger does not have yet
    with App(evo.home) as app:
        future = authority.proposal_message(app.state(), "approve", 10_000, digest)
    assert_refused(evo, "approve", "--signature", signing.sign(private, future), "--key-id", kid,
                   "--checkpoint", f"10000:{digest}", says="checkpoint 10000 is not a record of this ledger")
    assert state_of(evo.home).phase is Phase.PROPOSED


def test_an_offline_signature_with_a_wrong_checkpoint_hash_is_refused(evo: Evo, proposed: str, operator_key: Path) -> None:
    private, kid = signing.load_private(operator_key), key_id_of(operator_key)
    seq, _ = tail(evo.home)
    wrong = "ab" * 32
    with App(evo.home) as app:
        message = authority.proposal_message(app.state(), "approve", seq, wrong)
    assert_refused(evo, "approve", "--signature", signing.sign(private, message), "--key-id", kid,
                   "--checkpoint", f"{seq}:{wrong}", says="checkpoint")


def test_a_signed_rejection_closes_the_evolution(evo: Evo, proposed: str, operator_key: Path) -> None:
    r = evo("reject", "--reason", "too chatty", "--key", str(operator_key))
    assert r.code == 0, r.err
    rejected = records(evo.home)[-1]["event"]
    assert rejected["type"] == "Rejected" and rejected["key_id"] == key_id_of(operator_key)
    assert rejected["reason"] == "too chatty"
    assert state_of(evo.home).phase is Phase.IDLE
    assert evo("verify").code == 0


def test_a_forged_signature_is_refused_and_recorded(evo: Evo, proposed: str, operator_key: Path) -> None:
    kid = key_id_of(operator_key)
    seq, digest = tail(evo.home)
    cp = f"{seq}:{digest}"
    refused = assert_refused(
        evo, "approve", "--signature", "ab" * 64, "--key-id", kid, "--checkpoint", cp, "--operator", "mallory",
        says="does not verify",
    )
    assert refused["action"] == "approve" and refused["proposal_hash"] == proposed
    assert refused["key_id"] == kid and refused["operator"] == "mallory"
    with App(evo.home) as app:
        good = signing.sign(signing.load_private(operator_key),
                            authority.proposal_message(app.state(), "approve", seq, digest))
    tampered = ("0" if good[0] != "0" else "1") + good[1:]
    assert_refused(evo, "approve", "--signature", tampered, "--key-id", kid, "--checkpoint", cp, says="does not verify")
    # an approval's signature does not reject
    assert_refused(evo, "reject", "--reason", "x", "--signature", good, "--key-id", kid, "--checkpoint", cp,
                   says="does not verify for rejection")
    assert_refused(evo, "approve", "--signature", "zz" * 64, "--key-id", kid, "--checkpoint", cp, says="not hex")
    assert_refused(evo, "approve", "--signature", good[:-2], "--key-id", kid, "--checkpoint", cp, says="63 bytes")
    # the refusals changed nothing: the good signature, at the checkpoint it signed, still approves
    assert evo("approve", "--signature", good, "--key-id", kid, "--checkpoint", cp).code == 0
    assert state_of(evo.home).phase is Phase.APPROVED
    assert evo("verify").code == 0


def test_a_key_the_ledger_does_not_trust_is_refused(evo: Evo, proposed: str, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger" / "s.key"
    assert evo("keygen", "--out", str(stranger)).code == 0
    refused = assert_refused(evo, "approve", "--key", str(stranger), says="is not trusted by this ledger")
    assert refused["key_id"] == key_id_of(stranger)
    err = evo("approve", "--key", str(stranger)).err
    assert "evo trust add" in err and "keygen --trust" not in err  # says how to fix it
    assert state_of(evo.home).phase is Phase.PROPOSED


def test_a_replayed_approval_of_an_old_proposal_is_refused(evo: Evo, driver: LedgerDriver, operator_key: Path) -> None:
    driver.window([GOOD, GOOD, GOOD])
    assert driver.state.proposal is not None
    old = driver.state.proposal.hash
    assert evo("approve", "--key", str(operator_key)).code == 0
    old_record = records(evo.home)[-1]["event"]
    old_signature, old_cp = old_record["signature"], f"{old_record['checkpoint_seq']}:{old_record['checkpoint_hash']}"
    driver.state = driver.app.state()
    driver.rollback()  # the approved rollout is aborted; the next window proposes again
    driver.window([GOOD, GOOD, GOOD])
    assert driver.state.proposal is not None
    new = driver.state.proposal.hash
    assert new != old
    kid = key_id_of(operator_key)
    refused = assert_refused(
        evo, "approve", "--signature", old_signature, "--key-id", kid, "--checkpoint", old_cp,
        says="does not verify for approval",
    )
    assert refused["proposal_hash"] == new
    refused = assert_refused(
        evo, "approve", "--proposal", old, "--signature", old_signature, "--key-id", kid, "--checkpoint", old_cp,
        says="not the pending one",
    )
    assert refused["proposal_hash"] == old
    assert state_of(evo.home).phase is Phase.PROPOSED


def test_a_raw_approval_naming_another_proposal_is_flagged_not_acted_on(
    evo: Evo, proposed: str, operator_key: Path
) -> None:
    """The agent writes an Approved record itself, signed for real but for another proposal:
    the verified fold does not apply it (nothing is approved) and `evo verify` names its seq."""
    private, kid = signing.load_private(operator_key), key_id_of(operator_key)
    lid = records(evo.home)[0]["hash"]
    seq0, digest = tail(evo.home)
    other = "0" * 64
    signature = signing.sign(private, authority.approval_message(lid, "approve", other, "C", "A", "M", seq0, digest))
    seq = append_raw(evo.home, ev.Approved(proposal_hash=other, operator="luna", signature=signature, key_id=kid,
                                           checkpoint_seq=seq0, checkpoint_hash=digest))
    state = state_of(evo.home)
    assert state.phase is Phase.PROPOSED  # never approved
    assert [(f.seq, f.type) for f in state.flagged] == [(seq, "Approved")]
    r = evo("verify")
    assert r.code == 1 and r.out.startswith(f"FAILED at seq {seq}:")
    assert f"seq {seq}: Approved: it names proposal 0000000000000000" in r.out + r.err
    # the operator's own approval still works after it
    assert evo("approve", "--key", str(operator_key)).code == 0
    assert state_of(evo.home).phase is Phase.APPROVED


def test_an_unsigned_raw_approval_is_flagged_and_reported(evo: Evo, proposed: str) -> None:
    seq = append_raw(evo.home, ev.Approved(proposal_hash=proposed, operator="luna"))
    state = state_of(evo.home)
    assert state.phase is Phase.PROPOSED and state.flagged[-1].seq == seq
    r = evo("verify")
    assert r.code == 1 and f"seq {seq}: Approved: unsigned approve of proposal {proposed[:16]}" in r.out + r.err


def test_a_key_file_others_can_read_is_refused_before_anything_is_appended(
    evo: Evo, proposed: str, operator_key: Path
) -> None:
    os.chmod(operator_key, 0o644)
    err = assert_unchanged(evo, 1, "approve", "--key", str(operator_key), says="too open")
    assert "chmod 600" in err
    os.chmod(operator_key, 0o640)
    assert_unchanged(evo, 1, "approve", "--key", str(operator_key), says="too open")
    assert_unchanged(evo, 1, "approve", "--key", str(operator_key.parent / "missing.key"), says="no such key file")
    os.chmod(operator_key, 0o600)
    assert evo("approve", "--key", str(operator_key)).code == 0


def test_signing_options_misused_are_usage_errors(evo: Evo, proposed: str, operator_key: Path) -> None:
    seq, digest = tail(evo.home)
    cp = f"{seq}:{digest}"
    kid = key_id_of(operator_key)
    sig = "ab" * 64
    for argv in (
        ("approve", "--signature", sig),  # no --key-id, no --checkpoint
        ("approve", "--signature", sig, "--key-id", kid),  # no --checkpoint
        ("approve", "--key-id", kid, "--checkpoint", cp),  # no --signature
        ("approve", "--key", str(operator_key), "--signature", sig, "--key-id", kid, "--checkpoint", cp),  # both
        ("approve", "--signature", sig, "--key-id", kid, "--checkpoint", "12"),  # not SEQ:HASH
        ("approve", "--signature", sig, "--key-id", kid, "--checkpoint", f"{seq}:abc"),
        ("approve", "--signature", sig, "--key-id", kid, "--checkpoint", ""),
        ("reject", "--key", str(operator_key)),  # no --reason
        ("autonomy", "maybe", "--key", str(operator_key)),
    ):
        assert_unchanged(evo, 2, *argv, says="")
    assert state_of(evo.home).phase is Phase.PROPOSED


def test_approve_with_nothing_pending_and_no_key_says_so(evo: Evo) -> None:
    err = assert_unchanged(evo, 1, "approve", says="nothing to approve")
    assert "no proposal is pending" in err


# ---------------------------------------------------------------- autonomy


def test_autonomy_is_signed_per_nonce_and_an_old_grant_cannot_be_replayed(evo: Evo, operator_key: Path) -> None:
    key = str(operator_key)
    r = evo("autonomy", "on", "--key", key)
    assert r.code == 0, r.err
    assert "autonomous is false" in r.err  # the config must say so too
    on = records(evo.home)[-1]["event"]
    assert on["type"] == "AutonomyChanged" and on["enabled"] and on["nonce"] == 0
    assert state_of(evo.home).autonomy is True
    assert evo("autonomy", "off", "--key", key).code == 0
    off = records(evo.home)[-1]["event"]
    assert off["nonce"] == 1 and state_of(evo.home).autonomy is False
    refused = assert_refused(
        evo, "autonomy", "on", "--signature", on["signature"], "--key-id", on["key_id"],
        "--checkpoint", f"{on['checkpoint_seq']}:{on['checkpoint_hash']}",
        says="does not verify for autonomy on at nonce 2",
    )
    assert refused["action"] == "autonomy" and refused["proposal_hash"] == ""
    assert state_of(evo.home).autonomy is False
    assert_unchanged(evo, 1, "autonomy", "off", "--key", key, says="already off")  # nothing to change
    # the agent appends the old grant itself: flagged (stale nonce), autonomy stays off
    replayed = ev.AutonomyChanged(**{k: v for k, v in on.items() if k != "type"})
    seq = append_raw(evo.home, replayed)
    assert state_of(evo.home).autonomy is False
    r = evo("verify")
    assert r.code == 1 and f"seq {seq}: AutonomyChanged: nonce 0 is stale" in r.out + r.err


def test_autonomy_print_message_is_the_next_nonce(evo: Evo, operator_key: Path) -> None:
    seq, digest = tail(evo.home)
    lid = records(evo.home)[0]["hash"]
    r = evo("autonomy", "on", "--print-message")
    assert r.code == 0 and r.out == f"evo-autonomy-v2\n{lid}\non\n0\n{seq}:{digest}\n"
    signature = signing.sign(signing.load_private(operator_key), r.out.encode())
    r = evo("autonomy", "on", "--signature", signature, "--key-id", key_id_of(operator_key), "--checkpoint", f"{seq}:{digest}")
    assert r.code == 0, r.err
    assert state_of(evo.home).autonomy is True and evo("verify").code == 0


def test_autonomy_by_an_untrusted_key_is_refused(evo: Evo, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger.key"
    assert evo("keygen", "--out", str(stranger)).code == 0
    assert_refused(evo, "autonomy", "on", "--key", str(stranger), says="is not trusted")
    assert state_of(evo.home).autonomy is False
