"""The record of a customer's erasure: whose personal data was shredded, when, by whom and why.

Erasing shreds the customer's keys (the keystore does that); this aggregate is what the
ledger keeps of it. The refunds themselves are not touched: their amounts, decisions and
timelines stay as they were, and their personal fields no longer open.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id
from shared.quick_copy import QuickCopy


class CustomerErasure(QuickCopy, Aggregate):
    """One customer of one tenant; erased once, or again after they came back."""

    @staticmethod
    def create_id(tenant: str, customer_id: str) -> uuid.UUID:
        return derived_id("customer-erasure", tenant, customer_id)

    @event("Registered")
    def __init__(self, *, tenant: str, customer_id: str) -> None:
        self.tenant = tenant
        self.customer_id = customer_id
        self.erasures: list[dict[str, Any]] = []
        self.key_ids: list[str] = []  # every key ever erased

    @property
    def last(self) -> dict[str, Any] | None:
        return self.erasures[-1] if self.erasures else None

    def erase(
        self,
        *,
        key_ids: list[str],
        refund_ids: list[str],
        reason: str,
        actor: str,
        at: datetime,
    ) -> bool:
        """Record an erasure; False (nothing recorded) when it shredded no key not recorded
        before — erasing an erased customer again changes nothing."""
        new = [key_id for key_id in key_ids if key_id not in self.key_ids]
        if self.erasures and not new:
            return False
        self._erased(self.tenant, self.customer_id, new, sorted(refund_ids), reason, actor, at)
        return True

    # Tenant and customer ride on the event, so that the relay maps it alone.
    @event("CustomerErased")
    def _erased(
        self,
        tenant: str,
        customer_id: str,
        key_ids: list[str],
        refund_ids: list[str],
        reason: str,
        actor: str,
        at: datetime,
    ) -> None:
        self.key_ids = [*self.key_ids, *key_ids]
        self.erasures.append(
            {
                "key_ids": key_ids,
                "refund_ids": refund_ids,
                "reason": reason,
                "actor": actor,
                "at": at,
            }
        )
