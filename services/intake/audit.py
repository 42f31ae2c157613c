"""Which refund each of intake's stored events concerns, for the ledger's correlation id."""

from __future__ import annotations

import uuid
from typing import Any

from shared.ids import public_id

REFUND_TOPIC = "services.intake.domain:RefundRequest"


def refund_of(topic: str, originator_id: uuid.UUID, state: dict[str, Any]) -> str | None:
    """A refund's own events; an order's events name the refund they reserve or settle."""
    if topic.startswith(REFUND_TOPIC + "."):
        return public_id("rf", originator_id)
    refund = state.get("refund_id")
    if isinstance(refund, str):
        try:
            return public_id("rf", uuid.UUID(refund))
        except ValueError:
            return refund
    return None
