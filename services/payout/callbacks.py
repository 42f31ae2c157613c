"""The gateway's completion callbacks as payout keeps them: each one processed once, every
repeat and every refusal recorded."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from services.payout.providers.base import CallbackRefused as CallbackRefused
from services.payout.providers.base import Refusal as Refusal
from shared.ids import derived_id
from shared.quick_copy import QuickCopy


class CallbackReplayed(Exception):
    """The callback (its id, the message) was processed before: it has no further effect
    (the repeat is counted)."""


@dataclass(frozen=True)
class Delivery:
    """One delivery of a callback as it arrived: the exact bytes the signature covers."""

    body: bytes
    signature: str | None
    callback_id: str | None  # what the delivery's id header says, if it has one
    at: datetime

    def notification(self) -> tuple[str, dict[str, Any]]:
        """The callback's id and its parsed body; CallbackRefused unless it is a gateway
        notification whose id agrees with the id header."""
        try:
            parsed = json.loads(self.body)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise CallbackRefused("malformed")
        callback_id = str(parsed.get("id") or "")
        if not callback_id or not isinstance(parsed.get("data"), dict):
            raise CallbackRefused("malformed")
        if self.callback_id is not None and self.callback_id != callback_id:
            raise CallbackRefused("id-mismatch")
        return callback_id, parsed


@dataclass
class RefusedCallback(QuickCopy, Aggregate, created_event_name="Refused"):
    """A provider callback we refused (bad or stale signature, ...): kept for the audit trail."""

    reason: str
    callback_id: str | None
    signature: str | None
    body_sha256: str
    received_at: datetime
    # Whose callback route it came to: `gateway`, or `<provider>/<tenant>` (v2, 0.4.0).
    source: str = "gateway"


@dataclass
class CallbackLog(QuickCopy, Aggregate, created_event_name="Received"):
    """One gateway notification (by its signed id): processed once, every repeat recorded."""

    callback_id: str
    type: str
    merchant_refund_no: str
    status: str
    outcome: str
    received_at: datetime
    repeats: int = field(default=0, init=False)

    @staticmethod
    def create_id(callback_id: str) -> uuid.UUID:
        return derived_id("gateway-callback", callback_id)

    @event("Replayed")
    def replayed(self, received_at: datetime) -> None:
        self.repeats += 1


# Both were defined in services/payout/domain.py at first: events stored then name that module.
for _moved in (RefusedCallback, CallbackLog):
    register_topic(f"services.payout.domain:{_moved.__name__}", _moved)
