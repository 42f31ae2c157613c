"""What review remembers of a customer: when they were first seen and when they asked for refunds.

These are the recorded signals the risk score reads (refunds in the last 30 days,
new customer), kept as events so a decision can be re-checked later.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id
from shared.quick_copy import QuickCopy

RECENT = timedelta(days=30)


class CustomerHistory(QuickCopy, Aggregate):
    @staticmethod
    def create_id(tenant: str, customer_id: str) -> uuid.UUID:
        return derived_id("customer-history", tenant, customer_id)

    @event("FirstSeen")
    def __init__(self, *, tenant: str, customer_id: str, at: datetime) -> None:
        self.tenant = tenant
        self.customer_id = customer_id
        self.first_seen = at
        self.requests: dict[str, datetime] = {}

    def refunds_before(self, at: datetime, *, excluding: str) -> int:
        """Refund requests in the 30 days before `at` (this one not counted)."""
        return sum(
            1
            for rid, when in self.requests.items()
            if rid != excluding and at - RECENT <= when < at
        )

    def record_request(self, refund_id: str, at: datetime) -> None:
        if refund_id not in self.requests:
            self._requested(refund_id, at)

    @event("RefundRequested")
    def _requested(self, refund_id: str, at: datetime) -> None:
        self.requests[refund_id] = at
