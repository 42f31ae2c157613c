"""Platform webhooks, the pure parts: Standard Webhooks signing, retry schedule, bookkeeping.

Nothing here does I/O; the delivery loop that uses it lives elsewhere. The signature scheme is
the one of https://www.standardwebhooks.com/ (v1, HMAC-SHA256 over ``{id}.{timestamp}.{body}``
with the base64 key after ``whsec_``), so receivers can verify with any Standard Webhooks
library. Several secrets may sign one message: during a rotation the old and the new secret
both sign, and the receiver accepts either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets as _secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
# The spec asks for secrets of 24 to 64 bytes; ours are 32, foreign ones are accepted if sane.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

# Delay before attempt n+1 (index n = attempts made so far): immediately, 5 s, 5 min, 30 min,
# 2 h, 5 h, 10 h, 10 h, then give up. Eight attempts in all.
RETRY_SCHEDULE: tuple[float, ...] = (
    0,
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    10 * 3600,
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE)
JITTER = 0.10
# A receiver's Retry-After is honoured, but never beyond the longest step of our own schedule.
MAX_RETRY_AFTER = max(RETRY_SCHEDULE)

DEFAULT_TOLERANCE = 300
EXCERPT_LIMIT = 256


class WebhookVerificationError(Exception):
    """A message whose headers or signature do not check out."""


class Uniform(Protocol):
    """What the schedule needs of a random source (``random.Random`` fits)."""

    def uniform(self, a: float, b: float, /) -> float: ...


# --- secrets and signatures --------------------------------------------------------------------


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


# --- retries -----------------------------------------------------------------------------------


def next_attempt_delay(
    attempt: int,
    rng: Uniform,
    retry_after: float | None = None,
    schedule: Sequence[float] = RETRY_SCHEDULE,
) -> float | None:
    """Seconds to wait before the next attempt, or None to give up.

    ``attempt`` is how many attempts were made so far (0 before the first, which is immediate).
    The schedule's step gets up to ±10 % jitter, never below zero; a Retry-After of the
    receiver wins when it is longer (capped at the schedule's longest step). ``schedule``
    replaces the spec's steps (a deployment's setting; tests use short ones).
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if attempt >= len(schedule):
        return None
    base = schedule[attempt]
    delay = max(0.0, base * (1 + rng.uniform(-JITTER, JITTER)))
    if retry_after is not None and math.isfinite(retry_after) and retry_after > delay:
        delay = min(retry_after, max(max(schedule), delay))
    return delay


def retry_schedule(text: str) -> tuple[float, ...]:
    """``"0,5,300"`` → (0.0, 5.0, 300.0): the delays before each attempt; ValueError if unusable."""
    try:
        steps = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"expected comma-separated seconds, got {text!r}") from None
    if any(not math.isfinite(step) or step < 0 for step in steps):
        raise ValueError("retry delays must be finite and >= 0")
    if len(steps) > 50:
        raise ValueError("at most 50 attempts")
    return steps


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from ``now``; None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def disable_after(failures_since: datetime | None, now: datetime, period: timedelta) -> bool:
    """Whether an endpoint failing without a success since ``failures_since`` is to be disabled."""
    return failures_since is not None and now - failures_since >= period


def is_gone(status: int) -> bool:
    """410 Gone: the receiver asks us to stop; the endpoint is disabled at once."""
    return status == 410


def excerpt(body: bytes, limit: int = EXCERPT_LIMIT) -> str:
    """A short, printable, safely decoded excerpt of a response body (nothing more is stored)."""
    if limit <= 0:
        return ""
    # UTF-8 needs at most 4 bytes a character; a cut multibyte tail becomes U+FFFD.
    text = body[: limit * 4 + 4].decode("utf-8", errors="replace")
    cleaned = "".join(
        " " if c in "\t\r\n" else c if c.isprintable() else "\ufffd" for c in text[: limit + 1]
    )
    if len(cleaned) > limit or len(body) > limit * 4 + 4:
        return cleaned[: limit - 1] + "…"
    return cleaned
