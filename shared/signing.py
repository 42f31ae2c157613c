"""Ed25519 keys that sign a service's ledger checkpoints."""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

DEV_SEED_LABEL = b"refunds public dev audit key/"


class BadKey(ValueError):
    pass


def dev_seed(service: str) -> str:
    """The documented development key of `service` (never accepted in production)."""
    return base64.b64encode(hashlib.sha256(DEV_SEED_LABEL + service.encode()).digest()).decode()


def _decode(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BadKey(f"{what} is not base64") from None
    if len(raw) != 32:
        raise BadKey(f"{what} must be 32 bytes, base64-encoded (got {len(raw)})")
    return raw


def key_id(public_key: str) -> str:
    """A short, stable name for a public key: the start of its SHA-256."""
    return "ed25519:" + hashlib.sha256(_decode(public_key, "public key")).hexdigest()[:16]


class Signer:
    def __init__(self, seed: str) -> None:
        self._key = Ed25519PrivateKey.from_private_bytes(_decode(seed, "signing key"))
        raw = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key = base64.b64encode(raw).decode()
        self.key_id = key_id(self.public_key)

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self._key.sign(payload)).decode()


def verify_signature(public_key: str, payload: bytes, signature: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(_decode(public_key, "public key"))
        key.verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, BadKey, binascii.Error, ValueError):
        return False
    return True
