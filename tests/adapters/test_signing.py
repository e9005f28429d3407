"""Operator keys and signatures (adapters.operator.signing): key files, messages, and what verifies."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import blake3
import pytest

from adapters.operator import signing
from evo_core import commands as cmd
from evo_core import events as ev
from evo_core.config import EvoConfig, validate_config
from evo_core.state import Phase
from ledger.store import Ledger
from tests.core.helpers import GOOD, Driver

LEDGER = "c0ffee" * 10 + "c0ff"


def _config(*lines: str, autonomous: bool = False) -> EvoConfig:
    return validate_config({"approval": {"trusted_keys": list(lines), "autonomous": autonomous}})


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, str, str]:
    path = tmp_path / "keys" / "op.key"
    kid, line = signing.generate(path, comment="alice@laptop")
    return path, kid, line


def test_generate_writes_a_0600_private_key_and_the_trusted_keys_line(key: tuple[Path, str, str]) -> None:
    path, kid, line = key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (path.parent / "op.key.pub").read_text() == line + "\n"
    hexkey = line.split(" ", 1)[0].removeprefix("ed25519:")
    assert line.endswith(" alice@laptop") and len(hexkey) == 64
    assert kid == blake3.blake3(bytes.fromhex(hexkey)).hexdigest()[:16] == signing.key_id(bytes.fromhex(hexkey))
    private = signing.load_private(path)
    assert signing.public_raw(private).hex() == hexkey
    assert signing.trusted(_config(line)) == {kid: bytes.fromhex(hexkey)}
    assert sorted(p.name for p in path.parent.iterdir()) == ["op.key", "op.key.pub"]  # no temp left


def test_the_private_key_is_0600_even_under_a_permissive_umask(tmp_path: Path) -> None:
    created: list[int] = []
    real_open = os.open

    def spy(p: object, flags: int, mode: int = 0o777, *a: object, **k: object) -> int:
        if flags & os.O_CREAT:
            created.append(mode)
        return real_open(p, flags, mode, *a, **k)  # type: ignore[arg-type]

    old = os.umask(0)
    try:
        os.open = spy  # type: ignore[assignment]
        signing.generate(tmp_path / "k", comment="")
    finally:
        os.open = real_open
        os.umask(old)
    assert created and all(mode == 0o600 for mode in created)  # created 0600, never wider
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_generate_never_overwrites_a_key(key: tuple[Path, str, str], tmp_path: Path) -> None:
    path, _, _ = key
    before = path.read_bytes()
    with pytest.raises(signing.KeyFileError, match="already exists"):
        signing.generate(path, comment="")
    assert path.read_bytes() == before
    other = tmp_path / "other.key"
    (tmp_path / "other.key.pub").write_text("someone's public key\n")
    with pytest.raises(signing.KeyFileError, match="already exists"):
        signing.generate(other, comment="")
    assert not other.exists()
    with pytest.raises(signing.KeyFileError, match="quotes"):
        signing.generate(tmp_path / "q.key", comment='say "hi"')


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_load_private_refuses_a_key_others_can_read(key: tuple[Path, str, str], mode: int) -> None:
    path, _, _ = key
    os.chmod(path, mode)
    with pytest.raises(signing.KeyFileError, match=f"permissions {mode:04o} are too open.*chmod 600"):
        signing.load_private(path)
    os.chmod(path, 0o400)
    signing.load_private(path)  # owner-only is fine


def test_load_private_says_what_is_wrong_with_a_bad_file(tmp_path: Path) -> None:
    with pytest.raises(signing.KeyFileError, match="no such key file.*evo keygen"):
        signing.load_private(tmp_path / "missing.key")
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    os.chmod(junk, 0o600)
    with pytest.raises(signing.KeyFileError, match="not an unencrypted PEM private key"):
        signing.load_private(junk)


def test_messages_are_exactly_the_documented_bytes() -> None:
    assert signing.approval_message("L", "approve", "P") == b"evo-approve-v1\nL\nP\n"
    assert signing.approval_message("L", "reject", "P") == b"evo-reject-v1\nL\nP\n"
    assert signing.autonomy_message("L", True, 3) == b"evo-autonomy-v1\nL\non\n3\n"
    assert signing.autonomy_message("L", False, 0) == b"evo-autonomy-v1\nL\noff\n0\n"
    with pytest.raises(ValueError):
        signing.approval_message("L", "autonomy", "P")


def test_signature_problem_names_each_way_a_signature_fails(key: tuple[Path, str, str], tmp_path: Path) -> None:
    path, kid, line = key
    private = signing.load_private(path)
    message = signing.approval_message(LEDGER, "approve", "ab" * 32)
    good = signing.sign(private, message)
    config = _config(line)
    Fault = signing.SignatureFault

    def problem(config: EvoConfig, kid: str, signature: str, message: bytes, fault: signing.SignatureFault) -> str:
        found = signing.signature_problem(config, kid, signature, message, "p")
        assert found is not None and found.fault is fault, found
        assert str(found) == found.text and "\n" not in found.text and found.fault.hint
        return found.text

    assert signing.signature_problem(config, kid, good, message, "p") is None
    assert "unsigned" in problem(config, "", "", message, Fault.UNSIGNED)
    assert "not trusted" in problem(_config(), kid, good, message, Fault.UNTRUSTED)
    assert "not hex" in problem(config, kid, "zz" * 64, message, Fault.NOT_HEX)
    assert "64" in problem(config, kid, good[:-2], message, Fault.WRONG_SIZE)
    other = signing.approval_message(LEDGER, "approve", "cd" * 32)
    assert "does not verify for p" in problem(config, kid, good, other, Fault.MISMATCH)
    forged = ("1" if good[0] != "1" else "2") + good[1:]
    assert "does not verify" in problem(config, kid, forged, message, Fault.MISMATCH)
    # a signature for another workspace (ledger id) does not count here
    elsewhere = signing.sign(private, signing.approval_message("0" * 64, "approve", "ab" * 32))
    assert "does not verify" in problem(config, kid, elsewhere, message, Fault.MISMATCH)
    assert "evo keygen --trust" in Fault.UNTRUSTED.hint and "--key FILE" in Fault.MISMATCH.hint


def _proposed() -> Driver:
    d = Driver().genesis()
    d.window([GOOD, GOOD, GOOD])
    assert d.state.phase is Phase.PROPOSED and d.state.proposal is not None
    return d


def test_approval_problem_verifies_the_approval_of_the_pending_proposal(key: tuple[Path, str, str]) -> None:
    path, kid, line = key
    private = signing.load_private(path)
    config = _config(line)
    d = _proposed()
    assert d.state.proposal is not None
    digest = d.state.proposal.hash
    assert signing.approval_problem(config, LEDGER, d.state) == "no approved proposal"

    signed = d.state
    sig = signing.sign(private, signing.approval_message(LEDGER, "approve", digest))
    d.do(cmd.Approve(operator="op", proposal_hash=digest, signature=sig, key_id=kid))
    assert signing.approval_problem(config, LEDGER, d.state) is None
    assert "not trusted" in str(signing.approval_problem(_config(), LEDGER, d.state))
    assert "does not verify" in str(signing.approval_problem(config, "f" * 64, d.state))

    # replayed: a rejection's signature (another action) or another proposal's does not count
    d.state = signed
    reject_sig = signing.sign(private, signing.approval_message(LEDGER, "reject", digest))
    d.do(cmd.Approve(operator="op", proposal_hash=digest, signature=reject_sig, key_id=kid))
    assert "does not verify for proposal" in str(signing.approval_problem(config, LEDGER, d.state))


def test_an_autonomous_approval_needs_the_config_and_a_signed_grant(key: tuple[Path, str, str]) -> None:
    path, kid, line = key
    private = signing.load_private(path)
    d = _proposed()
    on = signing.sign(private, signing.autonomy_message(LEDGER, True, 0))
    d.do(cmd.ChangeAutonomy(enabled=True, operator="op", key_id=kid, signature=on, nonce=0))
    assert d.state.proposal is not None
    d.do(cmd.Approve(operator="evo", proposal_hash=d.state.proposal.hash, autonomous=True))
    assert signing.autonomy_problem(_config(line, autonomous=True), LEDGER, d.state) is None
    assert signing.approval_problem(_config(line, autonomous=True), LEDGER, d.state) is None
    assert "autonomous is false" in str(signing.approval_problem(_config(line), LEDGER, d.state))
    assert "not trusted" in str(signing.approval_problem(_config(autonomous=True), LEDGER, d.state))


def test_autonomy_problem_refuses_a_grant_signed_for_another_nonce(key: tuple[Path, str, str]) -> None:
    path, kid, line = key
    private = signing.load_private(path)
    config = _config(line, autonomous=True)
    d = Driver().genesis()
    assert "autonomy is off" in str(signing.autonomy_problem(config, LEDGER, d.state))
    on0 = signing.sign(private, signing.autonomy_message(LEDGER, True, 0))
    off1 = signing.sign(private, signing.autonomy_message(LEDGER, False, 1))
    d.do(cmd.ChangeAutonomy(enabled=True, operator="op", key_id=kid, signature=on0, nonce=0))
    d.do(cmd.ChangeAutonomy(enabled=False, operator="op", key_id=kid, signature=off1, nonce=1))
    assert "autonomy is off" in str(signing.autonomy_problem(config, LEDGER, d.state))
    # the old "on" written out of band at nonce 2: the core takes it, the signature does not verify
    d.do(cmd.ChangeAutonomy(enabled=True, operator="op", key_id=kid, signature=on0, nonce=2))
    assert "does not verify for autonomy on at nonce 2" in str(signing.autonomy_problem(config, LEDGER, d.state))


def test_event_problem_checks_each_signed_record(key: tuple[Path, str, str]) -> None:
    path, kid, line = key
    private = signing.load_private(path)
    config = _config(line)
    d = _proposed()
    assert d.state.proposal is not None
    digest = d.state.proposal.hash
    ok = ev.Rejected(
        proposal_hash=digest, operator="op", reason="no", key_id=kid,
        signature=signing.sign(private, signing.approval_message(LEDGER, "reject", digest)),
    )
    assert signing.event_problem(config, LEDGER, ok, d.state) is None
    other = "cd" * 32  # signed for another proposal, whatever the record claims
    signed_other = signing.sign(private, signing.approval_message(LEDGER, "reject", other))
    claims_other = ev.Rejected(proposal_hash=other, operator="op", reason="no", key_id=kid, signature=signed_other)
    assert "it names proposal cdcd" in str(signing.event_problem(config, LEDGER, claims_other, d.state))
    tampered = ev.Rejected(proposal_hash=digest, operator="op", reason="no", key_id=kid, signature=signed_other)
    assert f"does not verify for reject of proposal {digest[:16]}" in str(
        signing.event_problem(config, LEDGER, tampered, d.state)
    )
    unsigned = ev.Approved(proposal_hash=digest, operator="op")
    assert "unsigned" in str(signing.event_problem(config, LEDGER, unsigned, d.state))
    autonomous = ev.Approved(proposal_hash=digest, operator="evo", autonomous=True)
    assert "autonomy was off" in str(signing.event_problem(config, LEDGER, autonomous, d.state))
    assert signing.event_problem(config, LEDGER, ev.Heartbeat(cycle=1), d.state) is None


def test_ledger_id_is_the_hash_of_the_first_record(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        with pytest.raises(signing.KeyFileError, match="empty"):
            signing.ledger_id(ledger)
        first = ledger.append([ev.Heartbeat(cycle=1)])
        ledger.append([ev.Heartbeat(cycle=2)])
        assert signing.ledger_id(ledger) == first.hash
