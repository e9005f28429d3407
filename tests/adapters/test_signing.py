"""Operator keys and signatures (adapters.operator.signing, .crypto): key files, public key lines,
why a signature does not count (``evo_core.authority.signature_problem`` against the keys a
ledger trusts), and the ledger id every signature is bound to."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import blake3
import pytest
from msgspec.structs import replace

from adapters.operator import signing
from adapters.runtime import history
from evo_core import authority
from evo_core import events as ev
from evo_core.state import State, TrustedKey
from ledger.store import Ledger
from tests import operator_key
from tests.core.helpers import GOOD

LEDGER = "c0ffee" * 10 + "c0ff"


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
    assert signing.load_public(path.parent / "op.key.pub") == (bytes.fromhex(hexkey), "alice@laptop")
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


def test_public_key_lines_and_files(key: tuple[Path, str, str], tmp_path: Path) -> None:
    path, kid, line = key
    raw = bytes.fromhex(line.split(" ", 1)[0].removeprefix("ed25519:"))
    assert signing.parse_public_line(line) == raw
    assert signing.load_public(path.parent / "op.key.pub") == (raw, "alice@laptop")
    assert signing.load_public(path) == (raw, "")  # a private key file gives its public key
    assert signing.public_line(raw) == "ed25519:" + raw.hex()
    for bad in ("ssh-ed25519 AAAA", "ed25519:abcd", "ed25519:" + "zz" * 32):
        with pytest.raises(signing.KeyFileError):
            signing.parse_public_line(bad)
    with pytest.raises(signing.KeyFileError, match="no such key file"):
        signing.load_public(tmp_path / "missing.pub")


def test_crypto_names_keys_and_verifies_signatures(key: tuple[Path, str, str]) -> None:
    path, kid, _ = key
    private = signing.load_private(path)
    raw = signing.public_raw(private)
    assert signing.CRYPTO.key_id(raw) == kid == signing.key_id(raw)
    assert signing.CRYPTO.digest(b"x") == blake3.blake3(b"x").hexdigest()
    sig = bytes.fromhex(signing.sign(private, b"message"))
    assert signing.CRYPTO.verifies(raw, sig, b"message")
    assert not signing.CRYPTO.verifies(raw, sig, b"messagf")
    assert not signing.CRYPTO.verifies(raw, bytes(64), b"message")
    assert not signing.CRYPTO.verifies(bytes(31), sig, b"message")  # not a key: no, never a crash


def _trusting(*keys: tuple[str, bytes], revoked: tuple[str, ...] = ()) -> State:
    return State(
        ledger_id=LEDGER,
        keys={kid: TrustedKey(key_id=kid, public=raw.hex()) for kid, raw in keys},
        revoked_keys=revoked,
    )


def test_signature_problem_names_each_way_a_signature_fails(key: tuple[Path, str, str]) -> None:
    path, kid, _ = key
    private = signing.load_private(path)
    raw = signing.public_raw(private)
    message = authority.approval_message(LEDGER, "approve", "ab" * 32, "C", "A", "M", 3, "ef" * 32)
    good = signing.sign(private, message)
    state = _trusting((kid, raw))
    Fault = signing.SignatureFault

    def problem(state: State, kid: str, signature: str, message: bytes, fault: signing.SignatureFault) -> str:
        found = authority.signature_problem(state, signing.CRYPTO, kid, signature, message, "p")
        assert found is not None and found.fault is fault, found
        assert str(found) == found.text and "\n" not in found.text and signing.hint(fault)
        return found.text

    assert authority.signature_problem(state, signing.CRYPTO, kid, good, message, "p") is None
    assert "unsigned p" in problem(state, "", "", message, Fault.UNSIGNED)
    assert "unsigned" in problem(state, kid, "", message, Fault.UNSIGNED)
    assert f"key {kid} is not trusted by this ledger" in problem(_trusting(), kid, good, message, Fault.UNTRUSTED)
    assert f"key {kid} was revoked" in problem(_trusting(revoked=(kid,)), kid, good, message, Fault.UNTRUSTED)
    assert "not hex" in problem(state, kid, "zz" * 64, message, Fault.NOT_HEX)
    assert "63 bytes" in problem(state, kid, good[:-2], message, Fault.WRONG_SIZE)
    other = authority.approval_message(LEDGER, "approve", "cd" * 32, "C", "A", "M", 3, "ef" * 32)
    assert f"the signature by key {kid} does not verify for p" in problem(state, kid, good, other, Fault.MISMATCH)
    forged = ("1" if good[0] != "1" else "2") + good[1:]
    assert "does not verify" in problem(state, kid, forged, message, Fault.MISMATCH)
    # a signature for another workspace (ledger id), action, candidate or checkpoint does not count here
    for elsewhere in (
        authority.approval_message("0" * 64, "approve", "ab" * 32, "C", "A", "M", 3, "ef" * 32),
        authority.approval_message(LEDGER, "reject", "ab" * 32, "C", "A", "M", 3, "ef" * 32),
        authority.approval_message(LEDGER, "approve", "ab" * 32, "D", "A", "M", 3, "ef" * 32),
        authority.approval_message(LEDGER, "approve", "ab" * 32, "C", "A", "N", 3, "ef" * 32),
        authority.approval_message(LEDGER, "approve", "ab" * 32, "C", "A", "M", 4, "ef" * 32),
    ):
        assert "does not verify" in problem(state, kid, signing.sign(private, elsewhere), message, Fault.MISMATCH)
    # the key id the signature claims is the one checked: under another trusted key it does not verify
    two = _trusting((kid, raw), (operator_key.KID, operator_key.PUBLIC))
    assert "does not verify" in problem(two, operator_key.KID, good, message, Fault.MISMATCH)


def test_hints_say_what_the_operator_can_do() -> None:
    Fault = signing.SignatureFault
    assert {f for f in Fault} == {Fault.UNSIGNED, Fault.UNTRUSTED, Fault.NOT_HEX, Fault.WRONG_SIZE, Fault.MISMATCH}
    assert "evo trust list" in signing.hint(Fault.UNTRUSTED) and "evo trust add" in signing.hint(Fault.UNTRUSTED)
    assert "--key FILE" in signing.hint(Fault.MISMATCH) and "checkpoint" in signing.hint(Fault.MISMATCH)
    assert "128-hex" in signing.hint(Fault.NOT_HEX) and "128-hex" in signing.hint(Fault.WRONG_SIZE)
    assert all("keygen --trust" not in signing.hint(f) for f in Fault)


def test_ledger_id_is_the_hash_of_the_first_record(tmp_path: Path) -> None:
    with Ledger(tmp_path) as ledger:
        with pytest.raises(signing.KeyFileError, match="empty"):
            signing.ledger_id(ledger)
        assert history.ledger_id(ledger) == ""
        first = ledger.append([ev.Heartbeat(cycle=1)])
        ledger.append([ev.Heartbeat(cycle=2)])
        assert signing.ledger_id(ledger) == first.hash == history.ledger_id(ledger)


def test_the_verified_fold_binds_signatures_to_this_ledgers_first_record(tmp_path: Path) -> None:
    """The ledger id is read from record 0 by the fold itself: the same signed approval verifies
    in the ledger it was made for and is flagged in a copy whose first record differs."""
    from tests.core.helpers import Driver

    d = Driver().genesis()
    d.window([GOOD, GOOD, GOOD])
    assert d.state.proposal is not None
    events = list(d.events)
    with Ledger(tmp_path / "a") as ledger:
        for e in events:
            ledger.append([e])
        step = history.verified_fold(ledger).evolve
        state = State()
        for rec in ledger.records():
            state = step(state, rec.event)
        assert state.ledger_id == signing.ledger_id(ledger) and not state.flagged
        seq, digest = ledger.tail().seq, ledger.tail().hash
        sig = signing.sign(operator_key.PRIVATE, authority.proposal_message(state, "approve", seq, digest))
        approved = ev.Approved(proposal_hash=state.proposal.hash, operator="op", signature=sig,  # type: ignore[union-attr]
                               key_id=operator_key.KID, checkpoint_seq=seq, checkpoint_hash=digest)
        assert not step(state, approved).flagged[len(state.flagged):]
    with Ledger(tmp_path / "b") as other:  # the same history with another first record
        other.append([replace(events[0], comment="elsewhere")])
        for e in events[1:]:
            other.append([e])
        step = history.verified_fold(other).evolve
        state2 = State()
        for rec in other.records():
            state2 = step(state2, rec.event)
        assert state2.ledger_id != state.ledger_id and not state2.flagged
        after = step(state2, approved)
        assert len(after.flagged) == 1 and "does not verify" in after.flagged[0].reason
