"""Review's rules: a case per refund request and the decision taken on it, with its rule."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id
from shared.money import Money


class CaseAlreadyDecided(Exception):
    pass


@dataclass(frozen=True)
class PolicyDecision:
    """What a policy concluded, and why — enough to explain the decision later."""

    outcome: Literal["approve", "reject"]
    policy_version: str
    rule: str
    explanation: dict[str, str]


@dataclass(frozen=True)
class AutoApprovalLimit:
    """The foundation's placeholder policy: approve up to a limit, reject above it.

    The limit is in major units of whatever currency the order was paid in, so
    "500.00" means 50000 fen for CNY and 500 yen for JPY.
    """

    limit: Decimal
    version: str = "placeholder-1"

    def decide(self, amount: Money) -> PolicyDecision:
        limit = Money.from_major(self.limit, amount.currency)
        if amount <= limit:
            return PolicyDecision("approve", self.version, "auto_approve.within_limit", {})
        return PolicyDecision(
            "reject",
            self.version,
            "auto_approve.over_limit",
            {
                "en": f"Refunds above {limit.format()} cannot be approved automatically.",
                "zh-CN": f"超过 {limit.format()} 的退款无法自动批准。",
            },
        )


class ReviewCase(Aggregate):
    """The review of one refund request."""

    @staticmethod
    def create_id(refund_id: str) -> uuid.UUID:
        # One case per refund, however often the request is delivered.
        return derived_id("review-case", refund_id)

    @event("Opened")
    def __init__(
        self,
        *,
        refund_id: str,
        tenant: str,
        order_id: str,
        amount: Money,
        payment: dict[str, Any],
        reason: str,
        causation_id: str,
    ) -> None:
        self.refund_id = refund_id
        self.tenant = tenant
        self.order_id = order_id
        self.amount = amount
        self.payment = payment
        self.reason = reason
        self.state = "open"
        self.decision: dict[str, Any] | None = None

    def decide(self, decision: PolicyDecision, decided_by: str, decided_at: datetime) -> None:
        if self.state != "open":
            raise CaseAlreadyDecided(self.refund_id)
        # Decision events carry the case's identity and route, so each one can be
        # published on its own, without reading the case again.
        facts = {"refund_id": self.refund_id, "tenant": self.tenant, "order_id": self.order_id}
        if decision.outcome == "approve":
            self._approved(
                **facts,
                amount=self.amount,
                payment=self.payment,
                policy_version=decision.policy_version,
                rule=decision.rule,
                decided_by=decided_by,
                decided_at=decided_at,
            )
        else:
            self._rejected(
                **facts,
                policy_version=decision.policy_version,
                rule=decision.rule,
                explanation=decision.explanation,
                decided_by=decided_by,
                decided_at=decided_at,
            )

    @event("Approved")
    def _approved(
        self,
        refund_id: str,
        tenant: str,
        order_id: str,
        amount: Money,
        payment: dict[str, Any],
        policy_version: str,
        rule: str,
        decided_by: str,
        decided_at: datetime,
    ) -> None:
        self.state = "approved"
        self.decision = {
            "outcome": "approved",
            "amount": amount,
            "rule": rule,
            "policy_version": policy_version,
            "decided_by": decided_by,
        }

    @event("Rejected")
    def _rejected(
        self,
        refund_id: str,
        tenant: str,
        order_id: str,
        policy_version: str,
        rule: str,
        explanation: dict[str, str],
        decided_by: str,
        decided_at: datetime,
    ) -> None:
        self.state = "rejected"
        self.decision = {
            "outcome": "rejected",
            "rule": rule,
            "explanation": explanation,
            "policy_version": policy_version,
            "decided_by": decided_by,
        }
