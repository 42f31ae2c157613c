"""Intake's rules: a refund request as the platform submitted it, and its customer-facing status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id
from shared.money import Money

# Later facts can arrive before earlier ones (they travel on different topics),
# so status only ever moves forward in this order.
STATUS_RANK = {
    "submitted": 0,
    "in_review": 1,
    "awaiting_evidence": 1,
    "approved": 2,
    "rejected": 2,
    "withdrawn": 2,
    "paying": 3,
    "payout_failed": 4,
    "paid": 5,
    "closed": 6,
}


class RefundRequest(Aggregate):
    """One request for money back on one order, from any channel."""

    @staticmethod
    def create_id(request_key: str) -> uuid.UUID:
        # The same tenant + idempotency key always names the same refund, so a
        # retried POST cannot create a second one, whichever replica answers it.
        return derived_id("refund", request_key)

    @event("Requested")
    def __init__(
        self,
        *,
        request_key: str,
        tenant: str,
        order: dict[str, Any],
        amount: Money,
        items: list[dict[str, Any]],
        reason: str,
        desired_outcome: str,
        description: str,
        evidence: list[dict[str, Any]],
        customer: dict[str, Any],
        channel: str,
        metadata: dict[str, str],
        fingerprint: str,
        actor: str,
    ) -> None:
        self.request_key = request_key
        self.tenant = tenant
        self.order = order
        self.amount = amount
        self.items = items
        self.reason = reason
        self.desired_outcome = desired_outcome
        self.description = description
        self.evidence = evidence
        self.customer = customer
        self.channel = channel
        self.metadata = metadata
        self.fingerprint = fingerprint
        self.status = "submitted"
        self.decision: dict[str, Any] | None = None
        self.payout: dict[str, Any] | None = None
        self.timeline: list[dict[str, Any]] = []
        self._note("submitted", self.created_on, actor)

    @property
    def order_id(self) -> str:
        return str(self.order["id"])

    @property
    def paid(self) -> Money:
        return Money(self.order["paid"]["amount"], self.order["paid"]["currency"])

    def _note(self, status: str, at: datetime, actor: str, **facts: Any) -> None:
        self.timeline.append({"status": status, "at": at, "actor": actor, **facts})
        if STATUS_RANK[status] > STATUS_RANK[self.status]:
            self.status = status

    def record_approval(
        self,
        *,
        amount: Money,
        policy_version: str,
        rule: str,
        decided_by: str,
        decided_at: datetime,
        causation_id: str,
    ) -> None:
        if self.decision is None:
            self._approved(amount, policy_version, rule, decided_by, decided_at, causation_id)

    @event("Approved")
    def _approved(
        self,
        amount: Money,
        policy_version: str,
        rule: str,
        decided_by: str,
        decided_at: datetime,
        causation_id: str,
    ) -> None:
        self.decision = {
            "outcome": "approved",
            "amount": amount,
            "policy_version": policy_version,
            "rule": rule,
            "decided_by": decided_by,
            "decided_at": decided_at,
        }
        self._note("approved", decided_at, decided_by, rule=rule)

    def record_rejection(
        self,
        *,
        policy_version: str,
        rule: str,
        explanation: dict[str, str],
        decided_by: str,
        decided_at: datetime,
        causation_id: str,
    ) -> None:
        if self.decision is None:
            self._rejected(policy_version, rule, explanation, decided_by, decided_at, causation_id)

    @event("Rejected")
    def _rejected(
        self,
        policy_version: str,
        rule: str,
        explanation: dict[str, str],
        decided_by: str,
        decided_at: datetime,
        causation_id: str,
    ) -> None:
        self.decision = {
            "outcome": "rejected",
            "policy_version": policy_version,
            "rule": rule,
            "explanation": explanation,
            "decided_by": decided_by,
            "decided_at": decided_at,
        }
        self._note("rejected", decided_at, decided_by, rule=rule)

    def record_payment(
        self,
        *,
        payout_id: str,
        amount: Money,
        method: str,
        provider_reference: str,
        paid_at: datetime,
        expected_arrival: datetime,
        causation_id: str,
    ) -> None:
        if self.payout is None or self.payout.get("status") != "paid":
            self._paid(
                payout_id,
                amount,
                method,
                provider_reference,
                paid_at,
                expected_arrival,
                causation_id,
            )

    @event("PayoutSucceeded")
    def _paid(
        self,
        payout_id: str,
        amount: Money,
        method: str,
        provider_reference: str,
        paid_at: datetime,
        expected_arrival: datetime,
        causation_id: str,
    ) -> None:
        self.payout = {
            "status": "paid",
            "payout_id": payout_id,
            "amount": amount,
            "method": method,
            "provider_reference": provider_reference,
            "paid_at": paid_at,
            "expected_arrival": expected_arrival,
        }
        self._note("paid", paid_at, "service:payout", payout_id=payout_id)

    def record_payout_failure(
        self, *, payout_id: str, cause: str, failed_at: datetime, causation_id: str
    ) -> None:
        if self.payout is None:
            self._payout_failed(payout_id, cause, failed_at, causation_id)

    @event("PayoutFailed")
    def _payout_failed(
        self, payout_id: str, cause: str, failed_at: datetime, causation_id: str
    ) -> None:
        self.payout = {
            "status": "failed",
            "payout_id": payout_id,
            "cause": cause,
            "failed_at": failed_at,
        }
        self._note("payout_failed", failed_at, "service:payout", cause=cause)
