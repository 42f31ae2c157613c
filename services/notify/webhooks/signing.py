"""Platform webhooks, how a message is signed: Standard Webhooks secrets and signatures.

Nothing here does I/O. The signature scheme is the one of https://www.standardwebhooks.com/
(v1, HMAC-SHA256 over ``{id}.{timestamp}.{body}`` with the base64 key after ``whsec_``), so
receivers can verify with any Standard Webhooks library. Several secrets may sign one message:
during a rotation the old and the new secret both sign, and the receiver accepts either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
# The spec asks for secrets of 24 to 64 bytes; ours are 32, foreign ones are accepted if sane.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

DEFAULT_TOLERANCE = 300


class WebhookVerificationError(Exception):
    """A message whose headers or signature do not check out."""


def new_secret() -> str:
    """A fresh endpoint secret in the Standard Webhooks format: ``whsec_`` + base64(32 bytes)."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64-decoded part after ``whsec_`` (prefix optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("webhook secret is not valid base64") from error
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"webhook secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, not {len(key)}"
        )
    return key


def _check_msg_id(msg_id: str) -> None:
    # It goes into a header and into the signed content: no whitespace, no control characters.
    if not msg_id or any(c.isspace() or not c.isprintable() for c in msg_id):
        raise ValueError("webhook message id must be non-empty, without whitespace")


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64 HMAC-SHA256>`` signature of ``{msg_id}.{timestamp}.{body}``."""
    _check_msg_id(msg_id)
    digest = hmac.new(
        secret_key(secret), _signed_content(msg_id, timestamp, body), hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signatures(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated (rotation)."""
    if isinstance(secrets, str):
        raise TypeError("signatures() takes a sequence of secrets, not one string")
    if not secrets:
        raise ValueError("at least one webhook secret is needed")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery of ``body``."""
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signatures(secrets, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> None:
    """Check a received message as a receiver would; raise ``WebhookVerificationError`` if not.

    For our own tests and tools. Header names are case-insensitive; the timestamp must lie
    within ``tolerance`` seconds of ``now`` either way; any one ``v1`` signature may match.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get(HEADER_ID)
    raw_timestamp = lowered.get(HEADER_TIMESTAMP)
    signature_header = lowered.get(HEADER_SIGNATURE)
    if not (msg_id and raw_timestamp and signature_header):
        raise WebhookVerificationError("missing webhook headers")
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit():
        raise WebhookVerificationError("invalid webhook timestamp")
    timestamp = int(raw_timestamp)
    if timestamp < now - tolerance:
        raise WebhookVerificationError("webhook timestamp too old")
    if timestamp > now + tolerance:
        raise WebhookVerificationError("webhook timestamp too new")
    try:
        expected = base64.b64decode(sign(secret, msg_id, timestamp, body)[len("v1,") :])
    except ValueError as error:  # a malformed id
        raise WebhookVerificationError("invalid webhook id") from error
    for candidate in signature_header.split(" "):
        version, _, encoded = candidate.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(expected, given):
            return
    raise WebhookVerificationError("no matching webhook signature")
