"""An order's refundable balance: what was paid, and what open refunds have reserved of it.

Every refund of one order reserves its amount (and the items it names) on this
aggregate in the same transaction as the refund itself. Two concurrent refunds
of one order both write the order's next version; one of them fails and is
retried on fresh state, so together they can never exceed what was paid.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id
from shared.money import Money
from shared.quick_copy import QuickCopy

# Facts about an order that every later request must repeat unchanged.
SNAPSHOT_FIELDS = (
    "customer_id",
    "paid",
    "paid_at",
    "payment",
    "items",
    "shipping_fee",
    "discount",
)


@dataclass(frozen=True)
class FieldProblem:
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class FieldProblems(Exception):
    """The request is well-formed but some fields are unacceptable here (answered 422)."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class OverRefund(FieldProblems):
    """The request asks for more money or items than the order still has to refund."""


class Order(QuickCopy, Aggregate):
    """One order of one tenant, as its first refund request described it."""

    @staticmethod
    def create_id(tenant: str, order_id: str) -> uuid.UUID:
        return derived_id("order", tenant, order_id)

    @event("Recorded")
    def __init__(self, *, tenant: str, order_id: str, snapshot: dict[str, Any]) -> None:
        self.tenant = tenant
        self.order_id = order_id
        self.snapshot = snapshot
        self.reservations: dict[str, dict[str, Any]] = {}

    @property
    def paid(self) -> Money:
        return Money(self.snapshot["paid"]["amount"], self.snapshot["paid"]["currency"])

    def disagreements(self, snapshot: dict[str, Any]) -> list[FieldProblem]:
        """Fields of `snapshot` that contradict what this order recorded first."""
        found = [
            FieldProblem(
                f"order.{name}",
                "snapshot_mismatch",
                f"differs from the order as first recorded for {self.order_id}",
            )
            for name in SNAPSHOT_FIELDS
            if snapshot.get(name) != self.snapshot.get(name)
        ]
        known, given = self.snapshot.get("delivered_at"), snapshot.get("delivered_at")
        if known is not None and given is not None and known != given:
            found.append(
                FieldProblem("order.delivered_at", "snapshot_mismatch", f"was recorded as {known}")
            )
        return found

    def refundable(self) -> Money:
        reserved = sum(r["amount"] for r in self.reservations.values())
        return Money(self.paid.amount - reserved, self.paid.currency)

    def refundable_quantity(self, sku: str) -> int:
        ordered = sum(i["quantity"] for i in self.snapshot["items"] if i["sku"] == sku)
        reserved = sum(r["items"].get(sku, 0) for r in self.reservations.values())
        return ordered - reserved

    def check(self, amount: Money, items: dict[str, int], *, item_paths: dict[str, str]) -> None:
        """Raise OverRefund unless `amount` and `items` fit in what is left."""
        problems = []
        left = self.refundable()
        if amount.amount > left.amount:
            problems.append(
                FieldProblem(
                    "amount.amount",
                    "exceeds_refundable",
                    f"only {left.format()} of {self.paid.format()} is still refundable"
                    " on this order",
                )
            )
        for sku, quantity in items.items():
            still = self.refundable_quantity(sku)
            if quantity > still:
                problems.append(
                    FieldProblem(
                        item_paths.get(sku, "items"),
                        "exceeds_refundable",
                        f"only {still} of {sku} is still refundable on this order",
                    )
                )
        if problems:
            raise OverRefund(problems)

    def reserve(
        self,
        refund_id: str,
        amount: Money,
        items: dict[str, int],
        *,
        item_paths: dict[str, str] | None = None,
    ) -> None:
        self.check(amount, items, item_paths=item_paths or {})
        self._reserved(refund_id, amount.amount, dict(items))

    @event("Reserved")
    def _reserved(self, refund_id: str, amount: int, items: dict[str, int]) -> None:
        self.reservations[refund_id] = {"amount": amount, "items": items}

    def release(self, refund_id: str, *, why: str) -> None:
        """Give a withdrawn or rejected refund's reservation back to the order."""
        if refund_id in self.reservations:
            self._released(refund_id, why)

    @event("Released")
    def _released(self, refund_id: str, why: str) -> None:
        del self.reservations[refund_id]

    def settle(self, refund_id: str, approved: Money) -> None:
        """Review approved less than was reserved: keep only the approved amount."""
        held = self.reservations.get(refund_id)
        if held is not None and approved.amount < held["amount"]:
            self._settled(refund_id, approved.amount)

    @event("Settled")
    def _settled(self, refund_id: str, amount: int) -> None:
        self.reservations[refund_id]["amount"] = amount

    def record_delivery(self, delivered_at: str | None) -> None:
        if delivered_at is not None and self.snapshot.get("delivered_at") is None:
            self._delivered(delivered_at)

    @event("DeliveryRecorded")
    def _delivered(self, delivered_at: str) -> None:
        self.snapshot = {**self.snapshot, "delivered_at": delivered_at}
