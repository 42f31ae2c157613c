"""What a return publishes, step by step, and what the review case does around it: an
approval that waits for the goods publishes nothing, the payment after the return publishes
review.approved.v1 once; and what an inspection pays (pure)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from services.review.domain import ReviewCase
from services.review.policy_document import DEFAULT_POLICY_PATH, Policy, load_policy
from services.review.publishing import to_integration
from services.review.returns.inspection import inspect
from services.review.returns.trail import CHINA_STANDARD_TIME, TrackingEvent, Trail
from services.review.vocabulary import NO_DEDUCTION_RULE, WRONG_ITEM
from shared.contracts import (
    ExchangeReadyV1,
    ReturnDeadlineMissedV1,
    ReturnDeliveredV1,
    ReturnReceivedV1,
    ReturnRequestedV1,
    ReturnShipByApproachingV1,
    ReviewApprovedV1,
)
from shared.money import Money
from tests.unit.test_return_case import AT, SHIP_BY, cny, deadline, planned, requested, shipped
from tests.unit.test_review_cases import NOW, case

EXAMPLE_PATH = Path(DEFAULT_POLICY_PATH).with_name("example_return_policy.yaml")
POLICY = load_policy(EXAMPLE_PATH)


def published(aggregate: Any) -> list[Any]:
    return [p for p in map(to_integration, aggregate.collect_events()) if p is not None]


def goods_first_case(outcome: str = "approve") -> ReviewCase:
    made = case(outcome)
    made.assessment = {**made.assessment, "return_required": True}  # as opened under returns
    return made


def test_an_approval_waiting_for_the_goods_publishes_nothing_until_paid() -> None:
    made = goods_first_case()
    made.decide_by_rule(NOW)
    assert made.state == "approved" and made.decision is not None
    assert made.decision["awaiting_return"] is True
    assert published(made) == []
    made.pay_after_return(amount=Money(99999, "CNY"), rule="deduction.x", at=NOW)
    (paid,) = published(made)
    assert isinstance(paid, ReviewApprovedV1)
    assert paid.amount.amount == 18000  # never more than was approved
    assert (paid.rule, paid.decided_by) == ("deduction.x", "system:deduction.x")
    made.pay_after_return(amount=Money(100, "CNY"), rule="deduction.x", at=NOW)
    made.reopen_after_return(rule=WRONG_ITEM, at=NOW)
    assert published(made) == [] and made.state == "approved"  # paid once, closed


def test_a_contested_inspection_reopens_the_case_within_what_was_approved() -> None:
    made = goods_first_case("manual")
    made.approve(
        person="ann",
        roles=frozenset({"reviewer"}),
        amount=Money(15000, "CNY"),
        liability=None,
        at=NOW,
    )
    assert made.decision is not None and made.decision["awaiting_return"] is True
    made.reopen_after_return(rule=WRONG_ITEM, at=NOW)
    assert (made.state, made.round, made.refundable) == ("pending", 2, Money(15000, "CNY"))
    made.approve(
        person="bob",
        roles=frozenset({"reviewer"}),
        amount=Money(15000, "CNY"),
        liability=None,
        at=NOW,
    )
    assert made.decision is not None and made.decision["awaiting_return"] is False
    assert [p.TYPE for p in published(made)] == ["review.case_opened.v1", "review.approved.v1"]


def test_each_step_of_a_return_publishes_its_contract() -> None:
    found = requested(10001)
    (asked,) = published(found)
    assert isinstance(asked, ReturnRequestedV1)
    assert (asked.rma, asked.decided_by, asked.rule) == (found.rma, "ann", "return.no_reason")
    assert [line.price.amount for line in asked.items] == [6667, 3334]
    assert asked.address.postcode == "200000" and asked.ship_by == SHIP_BY
    found.remind_to_ship(SHIP_BY - timedelta(days=1))
    (reminded,) = published(found)
    assert isinstance(reminded, ReturnShipByApproachingV1) and reminded.ship_by == SHIP_BY
    found.close_not_shipped(SHIP_BY)
    (missed,) = published(found)
    assert isinstance(missed, ReturnDeadlineMissedV1)
    assert (missed.deadline, missed.consequence) == ("ship_by", "closed")


def test_delivery_receipt_and_exchange_publish_once_each() -> None:
    found = shipped()
    found.collect_events()
    base = AT.astimezone(CHINA_STANDARD_TIME)
    trail = Trail(
        carrier="shunfeng",
        number="SF1234567890123",
        state="delivered",
        events=frozenset({TrackingEvent(base, "签收")}),
    )
    found.track(trail, actor="carrier:kuaidi100", at=AT, receipt_deadline=deadline)
    (delivered,) = published(found)  # the Tracked event is the return's own record
    assert isinstance(delivered, ReturnDeliveredV1) and delivered.receipt_by == AT + timedelta(7)
    line = {
        "sku": "A",
        "expected": 2,
        "received": 2,
        "condition": "as_expected",
        "heavy_damage": False,
        "photos": [],
        "deducted": cny(0),
        "rule": None,
        "explanation": {},
    }
    found.receive(
        lines=[line],
        outcome="exchange",
        amount=cny(0),
        deducted=cny(0),
        rule="return.received_as_expected",
        note="",
        person="wh.li",
        at=AT,
    )
    found.exchange_ready(difference=None, actor="wh.li", at=AT)
    received, ready = published(found)
    assert isinstance(received, ReturnReceivedV1) and received.received_by == "wh.li"
    assert received.items[0].deducted.amount == 0 and received.outcome == "exchange"
    assert isinstance(ready, ExchangeReadyV1) and ready.difference is None
    assert [i.sku for i in ready.items] == ["A", "B"]


def test_the_plan_itself_and_the_shipment_are_not_published() -> None:
    assert published(planned()) == []  # the news is the approval's return_requested
    found = shipped()
    found.collect_events()
    found.record_subscription(actor="carrier:kuaidi100", at=AT)
    found.withdraw(actor="customer", at=AT)
    assert published(found) == []  # intake published the shipment and the withdrawal


# -- what an inspection pays (pure) -------------------------------------------------------------


def items(*lines: tuple[str, str, int, int]) -> list[dict[str, Any]]:
    return [{"sku": s, "category": c, "quantity": q, "price": cny(p)} for s, c, q, p in lines]


def receipt(sku: str, quantity: int, condition: str = "as_expected", **more: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "condition": condition, **more}


def test_an_inspection_deducts_by_rule_and_does_not_pay_what_stayed_away() -> None:
    result = inspect(
        items(("PHONE", "electronics", 1, 40000), ("CASE", "electronics", 3, 3000)),
        [receipt("PHONE", 1), receipt("CASE", 1, "missing_parts")],
        approved=cny(43000),
        reason="changed_mind",
        desired_outcome="full_refund",
        policy=POLICY,
    )
    assert result.outcome == "refund"
    # Phone: 10 % restocking. Case: 2 of 3 not back (2000), the one back (1000) loses
    # 15 % + 10.00 = 1150, capped at its price: 1000.
    assert [line["deducted"] for line in result.lines] == [cny(4000), cny(1000)]
    assert result.deducted == cny(5000)
    assert result.amount == cny(43000 - 5000 - 2000)
    assert result.rule == "deduction.restocking_electronics"


def test_an_exchange_that_came_back_short_or_a_payment_of_nothing_goes_to_a_person() -> None:
    short = inspect(
        items(("TEE", "apparel", 2, 19900)),
        [receipt("TEE", 1)],
        approved=cny(0),
        reason="customer_error",
        desired_outcome="exchange",
        policy=POLICY,
    )
    assert (short.outcome, short.rule) == ("reviewer", NO_DEDUCTION_RULE)
    assert short.lines[0]["explanation"]["en"].startswith("The warehouse's inspection")
    document = yaml.safe_load(EXAMPLE_PATH.read_text("utf-8"))
    document["returns"]["deductions"]["damaged_by_customer"]["basis_points"] = 10_000
    nothing = inspect(
        items(("TEE", "apparel", 1, 19900)),
        [receipt("TEE", 1, "damaged_by_customer")],
        approved=cny(19900),
        reason="changed_mind",
        desired_outcome="full_refund",
        policy=Policy.model_validate(document),
    )
    assert (nothing.outcome, nothing.amount) == ("reviewer", cny(0))
    assert nothing.rule == "deduction.damaged_by_customer"
