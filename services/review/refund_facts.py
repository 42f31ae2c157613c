"""The facts of a refund request as the policy reads them, and one check of the trail.

Recorded when the request is made, so that an assessment can be re-computed later
from them and come out the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.money import CurrencyMismatch, Money

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Line:
    """An item of the order as sold: what it cost, and for services the period it covers."""

    sku: str
    category: str
    quantity: int
    unit_price: Money
    custom_made: bool = False
    service_start: datetime | None = None
    service_end: datetime | None = None


@dataclass(frozen=True)
class Facts:
    """Everything the rules look at, as recorded when the request was made.

    `items` are the (sku, quantity) asked for; empty means the whole order.
    `discount` is the order's coupons; `refunds_last_30d` and
    `customer_first_seen` are the customer's history at `requested_at`.
    `liability_disputed` marks a marketplace dispute (merchant vs carrier).
    """

    refund_id: str
    tenant: str
    customer_id: str
    order_id: str
    reason: str
    desired_outcome: str
    requested: Money
    paid: Money
    shipping_fee: Money | None
    discount: Money | None
    lines: tuple[Line, ...]
    items: tuple[tuple[str, int], ...]
    paid_at: datetime
    delivered_at: datetime | None
    requested_at: datetime
    evidence_count: int = 0
    refunds_last_30d: int = 0
    customer_first_seen: datetime | None = None
    liability_disputed: bool = False

    def __post_init__(self) -> None:
        currency = self.paid.currency
        amounts = [self.requested, self.paid, self.shipping_fee, self.discount]
        amounts += [line.unit_price for line in self.lines]
        for money in amounts:
            if money is None:
                continue
            if money.currency != currency:
                raise CurrencyMismatch(f"{money.currency} in an order paid in {currency}")
            if money.amount < 0:
                raise ValueError(f"negative amount {money.format()}")
        if any(line.quantity < 1 for line in self.lines) or any(q < 1 for _, q in self.items):
            raise ValueError("quantities must be positive")
        moments = [self.paid_at, self.delivered_at, self.requested_at, self.customer_first_seen]
        moments += [m for line in self.lines for m in (line.service_start, line.service_end)]
        if any(m is not None and m.utcoffset() is None for m in moments):
            raise ValueError("all moments must be timezone-aware")


@dataclass(frozen=True)
class Check:
    """One step of the trail: which rule was looked at, whether it passed, and on what."""

    rule: str
    passed: bool
    detail: str
