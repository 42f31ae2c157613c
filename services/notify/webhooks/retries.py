"""Platform webhooks, when to try again: the retry schedule with jitter, Retry-After, when an
endpoint counts as gone, and what of an answer is kept. Nothing here does I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol

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

EXCERPT_LIMIT = 256


class Uniform(Protocol):
    """What the schedule needs of a random source (``random.Random`` fits)."""

    def uniform(self, a: float, b: float, /) -> float: ...


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
