"""The trust root lives in the ledger, out of the agent's reach: `evo trust list / add / revoke`
(each change signed by a key the ledger trusts), config.toml granting nothing, the operator's
signed `evo rollback`, and the operator's witness outside the workspace, against which `evo
verify` detects a truncated or rewritten ledger."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

import msgspec
import pytest

from adapters.operator import signing, witness
from adapters.runtime.app import App
from evo_core import events as ev
from evo_core.state import Phase, State
from ledger.headfile import HeadFile
from ledger.store import Ledger
from ledger.tail import Checkpoint
from tests import operator_key as test_key
from tests.cli.conftest import Evo, LedgerDriver
from tests.core.helpers import GENESIS, GOOD


def records(home: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (home / "ledger.jsonl").read_bytes().splitlines()]


def state_of(home: Path) -> State:
    with App(home) as app:
        return app.state()


def key_id_of(key: Path) -> str:
    return signing.key_id(signing.public_raw(signing.load_private(key)))


def append_raw(home: Path, event: ev.Event) -> int:
    """A chain-valid record appended with the project's own ledger code, bypassing `decide`."""
    with Ledger(home) as ledger:
        return ledger.append([event]).seq


def one_line_error(evo: Evo, code: int, *argv: str, says: str) -> str:
    """A command that fails with ``code``, says ``says`` in one line and appends nothing."""
    before = evo.ledger_bytes
    r = evo(*argv)
    assert r.code == code, (r.out, r.err)
    assert says in r.err, r.err
    assert "error: " in r.err.rstrip("\n").splitlines()[-1], r.err
    if code == 1:
        assert r.err.count("\n") == 1, r.err
    assert evo.ledger_bytes == before
    return r.err


def witnessed(home: Path) -> list[witness.Witnessed]:
    path, kept = witness.checkpoints(home)
    return kept


@pytest.fixture
def new_key(evo: Evo, tmp_path: Path) -> Path:
    key = tmp_path / "new-operator" / "new.key"
    assert evo("keygen", "--out", str(key), "--comment", "successor").code == 0
    return key


@pytest.fixture
def two_heads(evo: Evo, driver: LedgerDriver) -> tuple[str, str]:
    """G001 and G002 promoted (signed by the test key as the runner's driver does): HEAD is G002."""
    g1 = driver.promote()
    g2 = driver.promote()
    assert state_of(evo.home).head == g2
    return g1, g2


# ---------------------------------------------------------------- trust list, add, revoke


def test_trust_list_shows_the_key_pinned_at_init(evo: Evo) -> None:
    r = evo("trust", "list")
    assert r.code == 0, r.err
    assert r.out.splitlines() == [f"{test_key.KID}  since seq 0  test operator"]
    j = evo("trust", "list", "--json")
    assert j.code == 0
    listed = json.loads(j.out)
    assert listed["revoked"] == []
    assert [(k["key_id"], k["public"], k["since_seq"]) for k in listed["trusted"]] == [
        (test_key.KID, "ed25519:" + test_key.PUBLIC.hex(), 0)
    ]
    first = records(evo.home)[0]["event"]
    assert first["type"] == "KeyTrusted" and first["key_id"] == test_key.KID and not first["signature"]
    assert state_of(evo.home).pinned_keys == (test_key.KID,)


def test_add_a_key_then_revoke_the_old_one(evo: Evo, operator_key: Path, new_key: Path, driver: LedgerDriver) -> None:
    new_id = key_id_of(new_key)
    r = evo("trust", "add", f"{new_key}.pub", "--key", str(operator_key))
    assert r.code == 0, r.err
    added = records(evo.home)[-1]["event"]
    assert added["type"] == "KeyTrusted" and added["key_id"] == new_id and added["signer"] == test_key.KID
    assert added["comment"] == "successor" and added["signature"]
    one_line_error(evo, 1, "trust", "add", f"{new_key}.pub", "--key", str(operator_key), says="already trusted")

    r = evo("trust", "revoke", test_key.KID, "--reason", "rotated", "--key", str(new_key))
    assert r.code == 0, r.err
    gone = records(evo.home)[-1]["event"]
    assert gone["type"] == "KeyRevoked" and gone["key_id"] == test_key.KID and gone["signer"] == new_id
    assert gone["reason"] == "rotated"
    listing = evo("trust", "list").out.splitlines()
    assert listing[0].startswith(f"{new_id}  since seq ") and listing[0].endswith("successor")
    assert listing[1:] == [f"{test_key.KID}  revoked"]
    state = state_of(evo.home)
    assert set(state.keys) == {new_id} and state.revoked_keys == (test_key.KID,) and not state.flagged
    r = evo("verify")
    assert r.code == 0 and r.out.startswith("ok: "), (r.out, r.err)

    # the revoked key approves nothing any more; its successor does
    driver.state = driver.app.state()
    driver.window([GOOD, GOOD, GOOD])
    before = len(records(evo.home))
    r = evo("approve", "--key", str(operator_key))
    assert r.code == 1 and f"key {test_key.KID} was revoked" in r.err
    assert len(records(evo.home)) == before + 1 and records(evo.home)[-1]["event"]["type"] == "ApprovalRefused"
    assert evo("approve", "--key", str(new_key)).code == 0
    assert state_of(evo.home).phase is Phase.APPROVED
    assert evo("verify").code == 0


def test_a_key_cannot_add_itself_or_be_added_unsigned(evo: Evo, new_key: Path) -> None:
    before = evo.ledger_bytes
    r = evo("trust", "add", f"{new_key}.pub", "--key", str(new_key))  # vouching for itself
    assert r.code == 1 and "is not trusted by this ledger" in r.err
    assert records(evo.home)[-1]["event"]["type"] == "ApprovalRefused"
    assert key_id_of(new_key) not in state_of(evo.home).keys
    assert evo.ledger_bytes.startswith(before)
    # the agent appends the KeyTrusted itself: flagged, never trusted
    raw = signing.load_public(Path(f"{new_key}.pub"))[0]
    seq = append_raw(evo.home, ev.KeyTrusted(key_id=key_id_of(new_key), public=raw.hex(), operator="luna"))
    assert key_id_of(new_key) not in state_of(evo.home).keys
    r = evo("verify")
    assert r.code == 1 and f"seq {seq}: KeyTrusted: unsigned trust in key {key_id_of(new_key)}" in r.out + r.err


def test_revoking_the_last_key_is_refused(evo: Evo, operator_key: Path) -> None:
    err = one_line_error(evo, 1, "trust", "revoke", test_key.KID, "--reason", "oops", "--key", str(operator_key),
                         says="is the last trusted key")
    assert "evo trust add" in err
    one_line_error(evo, 1, "trust", "revoke", "0123456789abcdef", "--reason", "x", "--key", str(operator_key),
                   says="is not trusted")
    assert set(state_of(evo.home).keys) == {test_key.KID}


def test_trust_usage_errors_append_nothing(evo: Evo, operator_key: Path, new_key: Path) -> None:
    one_line_error(evo, 2, "trust", "add", "--key", str(operator_key), says="needs the new key .pub file")
    one_line_error(evo, 2, "trust", "revoke", "--key", str(operator_key), says="needs a key id")
    one_line_error(evo, 2, "trust", "add", f"{new_key}.pub", says="sign with --key FILE")  # no key
    one_line_error(evo, 2, "trust", "rotate", says="invalid choice")


def test_a_key_in_config_toml_grants_nothing(evo: Evo, new_key: Path, driver: LedgerDriver) -> None:
    line = Path(f"{new_key}.pub").read_text().strip()
    config = evo.home / "config.toml"
    text = config.read_text()
    assert text.count("trusted_keys = []") == 1
    config.write_text(text.replace("trusted_keys = []", f'trusted_keys = ["{line}"]'))
    assert evo("status").code == 0  # a valid config: it is read, it just grants nothing
    driver.window([GOOD, GOOD, GOOD])
    r = evo("approve", "--key", str(new_key))
    assert r.code == 1 and "is not trusted by this ledger" in r.err, (r.out, r.err)
    assert records(evo.home)[-1]["event"]["type"] == "ApprovalRefused"
    assert state_of(evo.home).phase is Phase.PROPOSED
    assert "since seq" in evo("trust", "list").out and key_id_of(new_key) not in evo("trust", "list").out


# ---------------------------------------------------------------- rollback


def test_rollback_without_a_key_is_a_usage_error(evo: Evo, two_heads: tuple[str, str]) -> None:
    g1, g2 = two_heads
    one_line_error(evo, 2, "rollback", says="sign with --key FILE")
    one_line_error(evo, 2, "rollback", "--to", g1, says="sign with --key FILE")
    assert state_of(evo.home).head == g2


def test_a_signed_rollback_revokes_what_it_left(evo: Evo, operator_key: Path, two_heads: tuple[str, str]) -> None:
    g1, g2 = two_heads
    r = evo("rollback", "--key", str(operator_key))
    assert r.code == 0, r.err
    rolled = records(evo.home)[-1]["event"]
    assert rolled["type"] == "RolledBack" and (rolled["from_generation"], rolled["to_generation"]) == (g2, g1)
    assert rolled["key_id"] == test_key.KID and rolled["signature"] and not rolled["automatic"]
    state = state_of(evo.home)
    assert state.head == g1 and state.revoked == (g2,)
    assert evo("verify").code == 0
    # the rolled-back generation cannot be restored, signed or not
    one_line_error(evo, 1, "rollback", "--to", g2, "--key", str(operator_key), says=f"{g2} was rolled back")
    one_line_error(evo, 1, "rollback", "--to", "Luna-G002", "--key", str(operator_key), says="Luna-G002")
    one_line_error(evo, 1, "rollback", "--to", "Luna-G077-x-c1", "--key", str(operator_key), says="never promoted")
    assert state_of(evo.home).head == g1
    # nor by the agent's own record, signed or unsigned
    seq = append_raw(evo.home, ev.RolledBack(from_generation=g1, to_generation=g2, reason="roll-forward"))
    assert state_of(evo.home).head == g1
    r = evo("verify")
    assert r.code == 1 and f"seq {seq}: RolledBack: {g2} was rolled back by an earlier rollback (revoked)" in r.out + r.err
    # the operator can still go further back, signed
    assert evo("rollback", "--to", GENESIS, "--key", str(operator_key)).code == 0
    assert state_of(evo.home).head == GENESIS


def test_rollback_offline_print_message_then_signature(evo: Evo, operator_key: Path, two_heads: tuple[str, str]) -> None:
    g1, g2 = two_heads
    before = evo.ledger_bytes
    r = evo("rollback", "--print-message")
    assert r.code == 0 and evo.ledger_bytes == before
    last = records(evo.home)[-1]
    lid = records(evo.home)[0]["hash"]
    assert r.out == f"evo-rollback-v1\n{lid}\n{g2}\n{g1}\n{last['seq']}:{last['hash']}\n"
    sig = signing.sign(signing.load_private(operator_key), r.out.encode())
    r = evo("rollback", "--signature", sig, "--key-id", test_key.KID, "--checkpoint", f"{last['seq']}:{last['hash']}")
    assert r.code == 0, r.err
    assert state_of(evo.home).head == g1


def test_verify_names_a_raw_unsigned_rollback_or_approval(evo: Evo, two_heads: tuple[str, str], driver: LedgerDriver) -> None:
    g1, g2 = two_heads
    seq = append_raw(evo.home, ev.RolledBack(from_generation=g2, to_generation=g1, reason="agent"))
    assert state_of(evo.home).head == g2  # never applied
    r = evo("verify")
    assert r.code == 1 and r.out.startswith(f"FAILED at seq {seq}:"), (r.out, r.err)
    assert f"seq {seq}: RolledBack: unsigned rollback {g2} -> {g1}" in r.out + r.err

    driver.state = driver.app.state()
    driver.window([GOOD, GOOD, GOOD])
    pending = state_of(evo.home).proposal
    assert pending is not None
    seq2 = append_raw(evo.home, ev.Approved(proposal_hash=pending.hash, operator="luna"))
    assert state_of(evo.home).phase is Phase.PROPOSED
    r = evo("verify")
    assert r.code == 1 and r.out.startswith(f"FAILED at seq {seq}:")
    assert f"seq {seq2}: Approved: unsigned approve" in r.err
    status = evo("status")
    assert str(seq) in status.out + status.err and str(seq2) in status.out + status.err


def test_a_prefix_of_a_revoked_generation_is_refused_as_revoked(
    evo: Evo, operator_key: Path, two_heads: tuple[str, str]
) -> None:
    g1, g2 = two_heads
    assert evo("rollback", "--key", str(operator_key)).code == 0
    one_line_error(evo, 1, "rollback", "--to", "Luna-G002", "--key", str(operator_key), says="revoked")


# ---------------------------------------------------------------- the operator's witness


def _rewrite(home: Path, tmp: Path, events: list[ev.Event], keep: Sequence[bytes] = ()) -> None:
    """The agent's consistent rewrite: ``keep`` (raw lines, verbatim), then ``events``
    re-appended with the project's own ledger code to a fresh file swapped in with its head."""
    fresh = tmp / "fresh"
    fresh.mkdir()
    if keep:
        (fresh / "ledger.jsonl").write_bytes(b"".join(line + b"\n" for line in keep))
        last = json.loads(keep[-1])
        HeadFile(fresh / "ledger.head").write(Checkpoint(last["seq"], last["hash"]))
    with Ledger(fresh, clock=lambda: "2030-01-01T00:00:00.000Z") as ledger:
        for e in events:
            ledger.append([e])
        assert ledger.verify().ok
    for name in ("ledger.jsonl", "ledger.head"):
        shutil.move(fresh / name, home / name)
    for snap in (home / ".evo").glob("*snapshot*") if (home / ".evo").exists() else []:
        snap.unlink()


def _events(home: Path) -> list[ev.Event]:
    decoder = msgspec.json.Decoder(ev.AnyEvent)
    return [decoder.decode(json.dumps(r["event"])) for r in records(home)]


@pytest.fixture
def witnessed_history(evo: Evo, operator_key: Path, new_key: Path) -> list[witness.Witnessed]:
    """Signed commands the operator made: trust add, autonomy on, off; each kept in the witness."""
    assert [w.action for w in witnessed(evo.home)] == ["init"]
    assert evo("trust", "add", f"{new_key}.pub", "--key", str(operator_key)).code == 0
    assert evo("autonomy", "on", "--key", str(new_key)).code == 0
    assert evo("autonomy", "off", "--key", str(operator_key)).code == 0
    return witnessed(evo.home)


def test_the_witness_keeps_one_line_per_signed_command(evo: Evo, witnessed_history: list[witness.Witnessed], tmp_path: Path) -> None:
    path = witness.witness_path(evo.home)
    assert path.is_relative_to(tmp_path / "xdg-config" / "evo" / "witness")  # the operator's, outside the workspace
    assert not path.is_relative_to(evo.home)
    kept = witnessed_history
    assert [w.action for w in kept] == ["init", "trust", "autonomy", "autonomy"]
    assert len(path.read_bytes().splitlines()) == 4
    lid = records(evo.home)[0]["hash"]
    hashes = [r["hash"] for r in records(evo.home)]
    for w in kept:
        assert w.ledger_id == lid and hashes[w.seq] == w.hash
    assert kept[0].keys == (test_key.KID,)
    signed = [r["event"] for r in records(evo.home) if r["event"].get("checkpoint_seq", -1) >= 0]
    assert [(e["checkpoint_seq"], e["checkpoint_hash"]) for e in signed] == [(w.seq, w.hash) for w in kept[1:]]
    # a refused command is not witnessed
    assert evo("autonomy", "on", "--signature", "ab" * 64, "--key-id", test_key.KID,
               "--checkpoint", f"{kept[-1].seq}:{kept[-1].hash}").code == 1
    assert len(witnessed(evo.home)) == 4
    r = evo("verify")
    assert r.code == 0 and "4 operator checkpoints checked" in r.err, (r.out, r.err)


def test_verify_fails_when_the_ledger_is_truncated_below_a_witnessed_checkpoint(
    evo: Evo, witnessed_history: list[witness.Witnessed], driver: LedgerDriver
) -> None:
    last = witnessed_history[-1]
    lines = evo.ledger_bytes.splitlines()
    assert last.seq < len(lines)
    kept = lines[: last.seq]  # the record the operator's last signature saw is gone, and all after it
    (evo.home / "ledger.jsonl").write_bytes(b"".join(line + b"\n" for line in kept))
    tail = json.loads(kept[-1])
    HeadFile(evo.home / "ledger.head").write(Checkpoint(tail["seq"], tail["hash"]))  # consistent: the agent can
    r = evo("verify")
    assert r.code == 1, (r.out, r.err)
    assert f"the operator's checkpoint {last.seq}:{last.hash[:16]}" in r.out + r.err
    assert "truncated" in r.out + r.err


def test_verify_fails_when_the_ledger_is_rewritten_consistently(
    evo: Evo, witnessed_history: list[witness.Witnessed], tmp_path: Path
) -> None:
    """The whole chain re-appended to a fresh file and swapped in: every record chains, but the
    operator's checkpoints name records it no longer holds."""
    _rewrite(evo.home, tmp_path, _events(evo.home))
    r = evo("verify")
    assert r.code == 1, (r.out, r.err)
    first = witnessed_history[0]
    assert f"the operator's checkpoint {first.seq}:{first.hash[:16]}" in r.out + r.err
    assert "rewritten" in r.out + r.err


def test_verify_fails_when_the_history_after_the_genesis_is_rewritten(
    evo: Evo, witnessed_history: list[witness.Witnessed], tmp_path: Path
) -> None:
    """The same ledger id (record 0 kept byte for byte), the records after a point re-appended:
    old signatures still verify, yet the operator's later checkpoints are not in it."""
    lines = evo.ledger_bytes.splitlines()
    cut = witnessed_history[1].seq  # the checkpoint the trust add signed
    events = _events(evo.home)
    _rewrite(evo.home, tmp_path, events[cut + 1:], keep=lines[: cut + 1])
    assert records(evo.home)[0]["hash"] == json.loads(lines[0])["hash"]
    r = evo("verify")
    assert r.code == 1, (r.out, r.err)
    later = witnessed_history[2]
    assert later.seq > cut
    assert f"seq {later.seq}: the operator's checkpoint (autonomy" in r.out + r.err
    assert "the history was rewritten" in r.out + r.err
