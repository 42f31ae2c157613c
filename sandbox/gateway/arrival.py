"""When refunded money reaches the customer, by payment method (business days)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any


@dataclass(frozen=True)
class ArrivalRule:
    """When refunded money reaches the customer, in business days after the refund succeeds."""

    min_business_days: int
    max_business_days: int
    summary: str


ARRIVAL_RULES: dict[str, ArrivalRule] = {
    "card": ArrivalRule(3, 3, "3 business days"),
    "alipay": ArrivalRule(0, 0, "same day"),
    "wechat_pay": ArrivalRule(0, 0, "same day"),
    "bank_transfer": ArrivalRule(1, 3, "1-3 business days"),
    "store_balance": ArrivalRule(0, 0, "immediate"),
}


def add_business_days(start: date, days: int) -> date:
    """``start`` moved forward by ``days`` weekdays (Saturdays and Sundays are skipped)."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def arrival_estimate(method: str, start: date) -> dict[str, Any]:
    """The arrival window of a refund by ``method`` that succeeded (or will) on ``start``."""
    rule = ARRIVAL_RULES[method]
    return {
        "summary": rule.summary,
        "min_business_days": rule.min_business_days,
        "max_business_days": rule.max_business_days,
        "earliest": add_business_days(start, rule.min_business_days).isoformat(),
        "latest": add_business_days(start, rule.max_business_days).isoformat(),
    }
