"""Operator keys and signatures: only the operator may approve, reject or grant autonomy.

Theory of operation
-------------------
The agent that evolves can write the ledger, so an ``Approved`` record proves nothing by
itself. What it cannot do is sign: the operator's ed25519 private key lives outside the
workspace (``evo keygen`` refuses a path inside it), and only signatures by a public key listed
in ``config.toml`` ``[approval] trusted_keys`` count. A key is named by its ``key_id``: the
first 16 hex characters of the blake3 of its raw 32-byte public key.

What is signed (UTF-8, each line ending in ``\\n``)::

    evo-approve-v1 | evo-reject-v1        evo-autonomy-v1
    <ledger id>                           <ledger id>
    <full proposal hash>                  on | off
                                          <nonce>

The ledger id (the hash of record seq 0) binds a signature to one workspace; the proposal hash
binds it to one proposal, so an old approval replayed on a new proposal does not verify; the
nonce (the number of earlier autonomy changes) makes every autonomy switch single-use.

Key files: the private key is unencrypted PEM PKCS#8 (``openssl pkey`` reads it; ``openssl
pkeyutl -sign -rawin`` signs a message with it offline), written with mode 0600 from the start
and moved into place without ever overwriting; ``<key>.pub`` holds the ``ed25519:<hex>
<comment>`` line that goes into ``trusted_keys``. ``load_private`` refuses a key file that
group or others may read, as ssh does.

The core never sees any of this: it only refuses unsigned commands. The CLI verifies before it
appends, the runner re-verifies (``approval_problem``, ``autonomy_problem``) before it acts, and
``evo verify`` re-checks every signed record (``event_problem``). Why one signature does not
count is a typed value (``SignatureProblem``: a ``SignatureFault`` and the line that says it),
so the CLI picks its advice by the fault, never by the text.
"""

from __future__ import annotations

import enum
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from evo_core import events as ev
from evo_core.errors import EnvironmentFault
from evo_core.state import State

if TYPE_CHECKING:
    from evo_core.config import EvoConfig

PrivateKey = Ed25519PrivateKey
KEY_PREFIX = "ed25519:"


class KeyFileError(EnvironmentFault):
    """A key file that is missing, unreadable, too open, malformed or already there."""


class SignatureFault(enum.Enum):
    """Why a signature does not count."""

    UNSIGNED = "unsigned"  # no signature or no key id
    UNTRUSTED = "untrusted"  # the key is not in [approval] trusted_keys
    NOT_HEX = "not hex"
    WRONG_SIZE = "wrong size"  # not the 64 bytes of an ed25519 signature
    MISMATCH = "mismatch"  # it does not verify for this message (another proposal, nonce or workspace)

    @property
    def hint(self) -> str:
        """What the operator can do about it ("" when there is nothing to add)."""
        return _HINTS[self]


_HINTS = {
    SignatureFault.UNSIGNED: "give the 128-hex-character ed25519 signature",
    SignatureFault.UNTRUSTED: "trust it with `evo keygen --trust` (new keys) or add its .pub line to [approval] trusted_keys",
    SignatureFault.NOT_HEX: "give the 128-hex-character ed25519 signature",
    SignatureFault.WRONG_SIZE: "give the 128-hex-character ed25519 signature",
    SignatureFault.MISMATCH: "sign what is pending now with --key FILE (a signature made for another proposal, "
    "nonce or workspace never counts)",
}


@dataclass(frozen=True)
class SignatureProblem:
    """A signature that does not count: the fault, and the line that says it (``str()``)."""

    fault: SignatureFault
    text: str

    def __str__(self) -> str:
        return self.text


# ---------------------------------------------------------------- names and messages


def key_id(public_raw: bytes) -> str:
    return blake3.blake3(public_raw).hexdigest()[:16]


def public_raw(private: PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_line(public: bytes, comment: str = "") -> str:
    """The ``trusted_keys`` entry: ``ed25519:<64 hex>`` and an optional comment."""
    return f"{KEY_PREFIX}{public.hex()}" + (f" {comment}" if comment else "")


def ledger_id(source: Any) -> str:
    """The workspace's identity: the hash of ledger record seq 0. ``source`` is an ``App``, an
    ``EventStore`` or a ``Ledger``."""
    ledger = getattr(getattr(source, "store", source), "ledger", source)
    records = ledger.records()
    try:
        first = next(records, None)  # reads the first line only
    finally:
        records.close()
    if first is None:
        raise KeyFileError(f"{ledger.path}: the ledger is empty; nothing can be signed for it yet")
    return str(first.hash)


def approval_message(ledger_id: str, action: str, proposal_hash: str) -> bytes:
    """What an approval (``action="approve"``) or rejection (``"reject"``) signs."""
    if action not in ("approve", "reject"):
        raise ValueError(f"unknown signed action {action!r}")
    return f"evo-{action}-v1\n{ledger_id}\n{proposal_hash}\n".encode()


def autonomy_message(ledger_id: str, enabled: bool, nonce: int) -> bytes:
    return f"evo-autonomy-v1\n{ledger_id}\n{'on' if enabled else 'off'}\n{nonce}\n".encode()


# ---------------------------------------------------------------- verifying


def trusted(config: EvoConfig) -> dict[str, bytes]:
    """key_id -> raw public key, for every key in ``approval.trusted_keys``."""
    keys: dict[str, bytes] = {}
    for entry in config.approval.trusted_keys:
        raw = bytes.fromhex(entry.partition(":")[2].split(" ", 1)[0])  # validated by the config
        keys[key_id(raw)] = raw
    return keys


def signature_problem(
    config: EvoConfig, kid: str, signature: str, message: bytes, what: str
) -> SignatureProblem | None:
    """None when ``signature`` (hex) of ``message`` verifies with the trusted key ``kid``;
    otherwise why not (``what`` names what was signed)."""
    if not signature or not kid:
        return SignatureProblem(SignatureFault.UNSIGNED, f"unsigned {what} (no signature or key id)")
    public = trusted(config).get(kid)
    if public is None:
        return SignatureProblem(SignatureFault.UNTRUSTED, f"key {kid[:40]} is not trusted (config approval.trusted_keys)")
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        return SignatureProblem(SignatureFault.NOT_HEX, f"the signature of {what} is not hex")
    if len(raw) != 64:
        return SignatureProblem(
            SignatureFault.WRONG_SIZE, f"the signature of {what} is {len(raw)} bytes, an ed25519 signature is 64"
        )
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(raw, message)
    except InvalidSignature:
        return SignatureProblem(SignatureFault.MISMATCH, f"the signature by key {kid} does not verify for {what}")
    return None


def _text(problem: SignatureProblem | None) -> str | None:
    return None if problem is None else problem.text


def autonomy_problem(config: EvoConfig, ledger_id: str, state: State) -> str | None:
    """None iff the config allows autonomy and the latest autonomy change is a verified "on"."""
    if not config.approval.autonomous:
        return "config approval.autonomous is false"
    grant = state.autonomy_grant
    if grant is None or not grant.enabled:
        return "autonomy is off (no signed `evo autonomy on`)"
    return _text(signature_problem(
        config, grant.key_id, grant.signature, autonomy_message(ledger_id, True, grant.nonce),
        f"autonomy on at nonce {grant.nonce}",
    ))


def approval_problem(config: EvoConfig, ledger_id: str, state: State) -> str | None:
    """None iff the state's proposal carries an approval that verifies: an operator's signature
    of its hash by a trusted key, or an autonomous approval under a verified autonomy grant."""
    pending = state.proposal
    if pending is None or pending.approved_by is None:
        return "no approved proposal"
    if pending.approval_autonomous:
        why = autonomy_problem(config, ledger_id, state)
        return None if why is None else f"autonomous approval without a valid autonomy grant: {why}"
    return _text(signature_problem(
        config, pending.approval_key_id, pending.approval_signature,
        approval_message(ledger_id, "approve", pending.hash), f"proposal {pending.hash[:16]}",
    ))


def event_problem(config: EvoConfig, ledger_id: str, event: ev.Event, before: State) -> str | None:
    """For an auditor: what is wrong with a signed record (``Approved``, ``Rejected``,
    ``AutonomyChanged``) given the state it was appended to; None for a good or unsigned kind.
    An autonomous approval is checked against the grant then in force, not today's config."""
    match event:
        case ev.Approved(autonomous=True):
            grant = before.autonomy_grant
            if grant is None or not grant.enabled:
                return "autonomous approval while autonomy was off"
            why = signature_problem(
                config, grant.key_id, grant.signature, autonomy_message(ledger_id, True, grant.nonce),
                f"autonomy on at nonce {grant.nonce}",
            )
            return None if why is None else f"autonomous approval under a bad grant: {why}"
        case ev.Approved() | ev.Rejected():
            action = "approve" if isinstance(event, ev.Approved) else "reject"
            pending = before.proposal
            if pending is not None and event.proposal_hash != pending.hash:
                return f"it names proposal {event.proposal_hash[:16]}, the pending one was {pending.hash[:16]}"
            return _text(signature_problem(
                config, event.key_id, event.signature,
                approval_message(ledger_id, action, event.proposal_hash), f"{action} of proposal {event.proposal_hash[:16]}",
            ))
        case ev.AutonomyChanged():
            setting = "on" if event.enabled else "off"
            return _text(signature_problem(
                config, event.key_id, event.signature, autonomy_message(ledger_id, event.enabled, event.nonce),
                f"autonomy {setting} at nonce {event.nonce}",
            ))
    return None


# ---------------------------------------------------------------- key files


def sign(private: PrivateKey, message: bytes) -> str:
    return private.sign(message).hex()


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` whole with ``mode`` (never wider, not even briefly), never replacing
    anything: a temp file created 0600/O_EXCL beside it, fsynced, then hard-linked into place
    (fails if ``path`` appeared meanwhile)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        try:
            os.fchmod(fd, mode)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from None
    finally:
        tmp.unlink(missing_ok=True)


def generate(path: Path, *, comment: str) -> tuple[str, str]:
    """Write a new key pair: ``path`` (private, PEM PKCS#8, 0600) and ``<path>.pub`` (the
    ``trusted_keys`` line). Returns (key_id, public line). Refuses to overwrite either file."""
    if any(c in comment for c in '"\\') or not comment.isprintable():
        raise KeyFileError(f"a key comment may not hold quotes, backslashes or control characters: {comment!r}")
    pub_path = path.with_name(path.name + ".pub")
    for existing in (path, pub_path):
        if existing.exists() or existing.is_symlink():
            raise KeyFileError(f"{existing} already exists; refusing to overwrite a key (choose another --out)")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    raw = public_raw(private)
    line = public_line(raw, comment)
    _write_new(path, pem, 0o600)
    _write_new(pub_path, (line + "\n").encode(), 0o644)
    return key_id(raw), line


def load_private(path: Path) -> PrivateKey:
    """The private key at ``path``; refuses one that group or others may read or write."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file (make one with `evo keygen`)") from None
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the key file: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if st.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: permissions {st.st_mode & 0o777:04o} are too open: a private key must be "
                f"readable by its owner only (chmod 600 {path})"
            )
        data = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an ed25519 key")
    return key


__all__ = [
    "KeyFileError",
    "PrivateKey",
    "SignatureFault",
    "SignatureProblem",
    "approval_message",
    "approval_problem",
    "autonomy_message",
    "autonomy_problem",
    "event_problem",
    "generate",
    "key_id",
    "ledger_id",
    "load_private",
    "public_line",
    "public_raw",
    "sign",
    "signature_problem",
    "trusted",
]
