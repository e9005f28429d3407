"""The cryptography the verified fold uses (``evo_core.authority.Crypto``): blake3 digests and
ed25519 signatures. ``cryptography`` is imported on the first signature checked, so a
heartbeat, whose history is almost only heartbeats, never pays for it."""

from __future__ import annotations

import blake3


def key_id(public: bytes) -> str:
    """A key's name: the first 16 hex of the blake3 of its raw 32-byte public key."""
    return blake3.blake3(public).hexdigest()[:16]


class Ed25519Blake3:
    def digest(self, data: bytes) -> str:
        return blake3.blake3(data).hexdigest()

    def key_id(self, public: bytes) -> str:
        return key_id(public)

    def verifies(self, public: bytes, signature: bytes, message: bytes) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        try:
            Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


CRYPTO = Ed25519Blake3()
