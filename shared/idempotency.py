"""Stripe-style idempotency keys, kept as events beside the effects they guard.

A key is claimed in the same transaction as the command's own events, so two
concurrent requests with one key cannot both take effect: the loser's
transaction fails on the key's version and it replays the winner's answer.
The answer is remembered as (status, aggregate id, aggregate version), and is
replayed by rendering the aggregate at that version — the original body, byte
for byte, whatever happened to the refund since.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id
from shared.quick_copy import QuickCopy

DEFAULT_TTL = timedelta(hours=24)


class IdempotencyMismatch(Exception):
    """The key was used before for a different request (another body or endpoint)."""


@dataclass(frozen=True)
class Outcome:
    """What a command answered: its status and the aggregate version to render."""

    status: int
    aggregate_id: uuid.UUID
    version: int


@dataclass(frozen=True)
class KeyedRequest:
    """An incoming request that carries an Idempotency-Key."""

    scope: str  # tenant (or actor) the key belongs to
    key: str
    fingerprint: str

    @property
    def record_id(self) -> uuid.UUID:
        return IdempotencyKey.create_id(self.scope, self.key)


def fingerprint(method: str, path: str, body: Any) -> str:
    """Same endpoint + same canonical body → same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


class IdempotencyKey(QuickCopy, Aggregate):
    """One tenant's key: the request it was first used for and the answer given."""

    @staticmethod
    def create_id(scope: str, key: str) -> uuid.UUID:
        return derived_id("idempotency-key", scope, key)

    @event("Used")
    def __init__(
        self,
        *,
        scope: str,
        key: str,
        fingerprint: str,
        outcome: dict[str, Any],
        expires_at: datetime,
    ) -> None:
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
        self.outcome = outcome
        self.expires_at = expires_at

    def answer(self, request: KeyedRequest, now: datetime) -> Outcome | None:
        """The remembered outcome for `request`; None once the key has expired."""
        if now >= self.expires_at:
            return None
        if request.fingerprint != self.fingerprint:
            raise IdempotencyMismatch(request.key)
        return Outcome(
            status=int(self.outcome["status"]),
            aggregate_id=uuid.UUID(self.outcome["aggregate_id"]),
            version=int(self.outcome["version"]),
        )

    @event("Reused")
    def reuse(self, *, fingerprint: str, outcome: dict[str, Any], expires_at: datetime) -> None:
        """After expiry a key may name a new request, as with Stripe after 24 hours."""
        self.fingerprint = fingerprint
        self.outcome = outcome
        self.expires_at = expires_at


def as_record(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "aggregate_id": str(outcome.aggregate_id),
        "version": outcome.version,
    }
