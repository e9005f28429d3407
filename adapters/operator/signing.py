"""Operator keys and signatures: the adapter side of ``evo_core.authority``.

Theory of operation
-------------------
The agent that evolves can write the ledger, so an ``Approved`` record proves nothing by
itself. What it cannot do is sign: the operator's ed25519 private key lives outside the
workspace (``evo keygen`` refuses a path inside it), and only signatures by a key the ledger
trusts count: keys pinned when the workspace was created (``evo init --operator-key``) or
added later by a record signed with a key trusted then (``evo trust add``). config.toml grants
no trust. A key is named by its ``key_id``: the first 16 hex characters of the blake3 of its
raw 32-byte public key. What each signature covers (the ledger id, what is decided, and the
checkpoint the operator saw) is ``evo_core.authority``'s ``*_message``; every acting process
verifies through the verified fold with ``CRYPTO`` (blake3 and ed25519).

Key files: the private key is unencrypted PEM PKCS#8 (``openssl pkey`` reads it; ``openssl
pkeyutl -sign -rawin`` signs a message with it offline), written with mode 0600 from the start
and moved into place without ever overwriting; ``<key>.pub`` holds the ``ed25519:<hex>
<comment>`` line. ``load_private`` refuses a key file that group or others may read, as ssh
does. Why one signature does not count is a typed value (``SignatureProblem``: a
``SignatureFault`` and the line that says it), so the CLI picks its advice (``hint``) by the
fault, never by the text.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.operator.crypto import CRYPTO, key_id
from evo_core.authority import SignatureFault, SignatureProblem
from evo_core.errors import EnvironmentFault

PrivateKey = Ed25519PrivateKey
KEY_PREFIX = "ed25519:"


class KeyFileError(EnvironmentFault):
    """A key file that is missing, unreadable, too open, malformed or already there."""


_HINTS = {
    SignatureFault.UNSIGNED: "give the 128-hex-character ed25519 signature",
    SignatureFault.UNTRUSTED: "sign with a key this ledger trusts (`evo trust list`; `evo trust add` adds one, "
    "signed by a trusted key)",
    SignatureFault.NOT_HEX: "give the 128-hex-character ed25519 signature",
    SignatureFault.WRONG_SIZE: "give the 128-hex-character ed25519 signature",
    SignatureFault.MISMATCH: "sign what is pending now with --key FILE (a signature made for another proposal, "
    "nonce, checkpoint or workspace never counts)",
}


def hint(fault: SignatureFault) -> str:
    """What the operator can do about a signature that does not count."""
    return _HINTS[fault]




# ---------------------------------------------------------------- names and messages


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


def parse_public_line(line: str) -> bytes:
    """The raw public key of a ``ed25519:<64 hex> [comment]`` line (a ``.pub`` file's)."""
    text = line.strip()
    body = text.split(" ", 1)[0]
    if not body.startswith(KEY_PREFIX):
        raise KeyFileError(f'a public key line is "{KEY_PREFIX}<64 hex> [comment]" (see `evo keygen`), got {text[:40]!r}')
    try:
        raw = bytes.fromhex(body[len(KEY_PREFIX):])
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise KeyFileError(f"{body[:40]!r} is not a 32-byte ed25519 public key in hex")
    return raw


def load_public(path: Path) -> tuple[bytes, str]:
    """(raw public key, comment) from a ``.pub`` file, or from a private key file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such key file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read the public key: {exc}") from None
    if "PRIVATE KEY" in text:
        return public_raw(load_private(path)), ""
    raw = parse_public_line(text)
    parts = text.strip().split(" ", 1)
    return raw, parts[1] if len(parts) > 1 else ""


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
    "CRYPTO",
    "KeyFileError",
    "PrivateKey",
    "SignatureFault",
    "SignatureProblem",
    "generate",
    "hint",
    "key_id",
    "ledger_id",
    "load_private",
    "load_public",
    "parse_public_line",
    "public_line",
    "public_raw",
    "sign",
]
