"""Recovery claims: the platform paid the customer first; a liable party owes its share back.

An approval that splits liability (platform, merchant, carrier) opens one claim
per non-platform share, in the same transaction as the approval; finance later
marks each claim recovered (with the reference of the money received) or
written off (with a reason).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from services.review.vocabulary import LIABLE_PARTIES, ClaimState
from shared.ids import derived_id
from shared.money import Money
from shared.quick_copy import QuickCopy


class ClaimClosed(Exception):
    """A claim is settled once: recovered or written off."""


@dataclass
class RecoveryClaim(QuickCopy, Aggregate, created_event_name="Claimed"):
    """What one liable party owes back of one refund, until recovered or written off."""

    refund_id: str
    tenant: str
    order_id: str
    party: str
    amount: Money
    at: datetime  # when the approval opened it
    state: ClaimState = field(default="open", init=False)
    settlement: dict[str, Any] | None = field(default=None, init=False)

    @staticmethod
    def create_id(refund_id: str, party: str) -> uuid.UUID:
        return derived_id("recovery-claim", refund_id, party)

    # A settled claim refuses a second settlement: the check runs before the event is
    # recorded (an event method that raises records nothing), and always holds on replay.

    @event("Recovered")
    def recover(self, *, by: str, reference: str, at: datetime) -> None:
        self._settle("recovered", by=by, reference=reference, at=at)

    @event("WrittenOff")
    def write_off(self, *, by: str, reason: str, at: datetime) -> None:
        self._settle("written_off", by=by, reason=reason, at=at)

    def _settle(self, state: ClaimState, **settlement: Any) -> None:
        if self.state != "open":
            raise ClaimClosed(f"the claim is already {self.state}")
        self.state = state
        self.settlement = settlement


def claims_for(
    *,
    refund_id: str,
    tenant: str,
    order_id: str,
    liability: dict[str, int],
    currency: str,
    at: datetime,
) -> list[RecoveryClaim]:
    """One claim per liable party with a share above zero."""
    return [
        RecoveryClaim(
            refund_id=refund_id,
            tenant=tenant,
            order_id=order_id,
            party=party,
            amount=Money(liability[party], currency),
            at=at,
        )
        for party in LIABLE_PARTIES
        if liability.get(party, 0) > 0
    ]
