"""The test operator: one fixed ed25519 key that test workspaces pin, and ``sign_marked``, which
signs a command the tests mark with ``SIGNED`` (``signature="sig"``) for real, the way the CLI
signs it (``adapters.operator.approvals``), so the verified fold applies it."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from msgspec.structs import replace

from adapters.operator import signing
from evo_core import authority
from evo_core import commands as cmd
from evo_core.decide_rollout import rollback_target
from evo_core.state import State

PRIVATE = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = signing.public_raw(PRIVATE)
KID = signing.key_id(PUBLIC)
LINE = signing.public_line(PUBLIC, "test operator")
MARK = "sig"  # SIGNED's placeholder signature
SIGNED = dict(signature=MARK, key_id=KID)


def pin() -> cmd.TrustKey:
    """The command that pins the test key in a new ledger (before the genesis)."""
    return cmd.TrustKey(key_id=KID, public=PUBLIC.hex(), operator="test", comment="test operator")


def sign_marked(state: State, command: cmd.Command, checkpoint: tuple[int, str]) -> cmd.Command:
    """``command`` signed by the test key at ``checkpoint`` when it carries the ``SIGNED`` mark;
    any other command unchanged."""
    if getattr(command, "signature", None) != MARK or getattr(command, "key_id", None) != KID:
        return command
    seq, digest = checkpoint
    match command:
        case cmd.Approve() | cmd.Reject():
            action = "approve" if isinstance(command, cmd.Approve) else "reject"
            if state.proposal is None:
                return command
            message = authority.proposal_message(state, action, seq, digest)
        case cmd.Rollback():
            try:
                target = rollback_target(state, command.to)
            except Exception:  # the core refuses it: leave it to decide
                return command
            message = authority.rollback_message(state.ledger_id, state.head or "", target, seq, digest)
            command = replace(command, to=target)
        case cmd.ChangeAutonomy():
            message = authority.autonomy_message(state.ledger_id, command.enabled, command.nonce, seq, digest)
        case _:
            return command
    return replace(
        command, signature=signing.sign(PRIVATE, message), checkpoint_seq=seq, checkpoint_hash=digest
    )


def write_files(folder: Path) -> tuple[Path, Path]:
    """The test key as files, as `evo keygen` writes them: (private 0600, public .pub)."""
    from cryptography.hazmat.primitives import serialization

    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / "operator.key", folder / "operator.key.pub"
    if not private.exists():
        pem = PRIVATE.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        private.write_bytes(pem)
        private.chmod(0o600)
        public.write_text(LINE + "\n")
    return private, public


def signed(app: object, command: cmd.Command) -> cmd.Command:
    """``command`` signed for ``app``'s ledger (an ``App``) at its current end, when marked."""
    cp = app.store.load().checkpoint  # type: ignore[attr-defined]
    return sign_marked(app.state(), command, (cp.seq, cp.hash))  # type: ignore[attr-defined]
