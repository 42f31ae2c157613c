"""Facts and checks for the tests of review's automatic decisions under the default policy
(tests/unit/test_review_rules_*.py): the shipped `POLICY`, Shanghai's wall clock, a baseline
request (a damaged T-shirt approved by rule) to change one fact at a time, an order of one
line, a policy with other amount settings, and the checks of an assessment."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from services.review.assessment import Assessment
from services.review.policy_document import Policy, default_policy
from services.review.refund_facts import Facts, Line
from shared.money import Money

SHANGHAI = ZoneInfo("Asia/Shanghai")
POLICY = default_policy()


def sh(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """A moment on the wall clocks of Shanghai."""
    return datetime(year, month, day, hour, minute, second, tzinfo=SHANGHAI)


def cny(major: str) -> Money:
    return Money.from_major(major, "CNY")


SHIRT = Line("TSHIRT", "apparel", 1, cny("119.00"))
DELIVERED = sh(2026, 11, 3, 10, 0)
YEAR_2026 = {"service_start": sh(2026, 1, 1), "service_end": sh(2027, 1, 1)}


def facts(**changes: Any) -> Facts:
    """A damaged T-shirt with a photo, asked for two days after delivery: approved by rule."""
    base = Facts(
        refund_id="rf_1",
        tenant="acme",
        customer_id="C-42",
        order_id="ORD-1001",
        reason="damaged",
        desired_outcome="full_refund",
        requested=cny("119.00"),
        paid=cny("129.00"),
        shipping_fee=cny("10.00"),
        discount=None,
        lines=(SHIRT,),
        items=(("TSHIRT", 1),),
        paid_at=sh(2026, 11, 1, 10, 0),
        delivered_at=DELIVERED,
        requested_at=sh(2026, 11, 5, 10, 0),
        evidence_count=1,
        refunds_last_30d=0,
        customer_first_seen=sh(2025, 1, 1),
    )
    return replace(base, **changes)


def one_line(line: Line, **changes: Any) -> Facts:
    """An order of just `line` (no shipping), the whole of it asked for."""
    total = Money(line.unit_price.amount * line.quantity, line.unit_price.currency)
    return facts(
        lines=(line,),
        items=((line.sku, line.quantity),),
        requested=total,
        paid=total,
        shipping_fee=None,
        **changes,
    )


def with_amounts(**changes: Any) -> Policy:
    return POLICY.model_copy(update={"amounts": POLICY.amounts.model_copy(update=changes)})


def check(assessment: Assessment, rule: str) -> Any:
    return next(c for c in assessment.checks if c.rule == rule)


def explained(assessment: Assessment) -> None:
    """A customer-facing text in both locales, every placeholder filled."""
    assert set(assessment.explanation) == {"zh-CN", "en"}
    for text in assessment.explanation.values():
        assert text and "{" not in text and "}" not in text
