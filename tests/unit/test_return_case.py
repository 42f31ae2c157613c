"""The ReturnCase aggregate on its own: RMA, exact price allocation, the lifecycle's states,
tracking merged once, the deadlines' reminders once, and receipts it refuses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.review.returns.allocation import allocate, unreturned_share
from services.review.returns.case import ReturnCase
from services.review.returns.receipts import ReceiptRefused, ReturnStateError, rma_of
from services.review.returns.trail import CHINA_STANDARD_TIME, TrackingEvent, Trail
from shared.money import Money

AT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
SHIP_BY = AT + timedelta(days=7)


def cny(amount: int) -> Money:
    return Money(amount, "CNY")


def planned(refund_id: str = "rf_1") -> ReturnCase:
    return ReturnCase(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1",
        desired_outcome="full_refund",
        reason="changed_mind",
        items=[
            {"sku": "A", "category": "apparel", "quantity": 2, "value": cny(10000)},
            {"sku": "B", "category": "apparel", "quantity": 1, "value": cny(5000)},
        ],
        address={"name": "x", "phone": "+86 1", "lines": ["l"], "postcode": "200000"},
        rule="return.no_reason",
        explanation={},
        policy_version="p1",
        at=AT,
    )


def requested(amount: int = 10001) -> ReturnCase:
    case = planned()
    case.request(
        amount=cny(amount),
        ship_by=SHIP_BY,
        ship_remind_at=SHIP_BY - timedelta(days=2),
        decided_by="ann",
        approvers=["ann"],
        at=AT,
    )
    return case


def shipped() -> ReturnCase:
    case = requested()
    assert case.ship(carrier="shunfeng", tracking_number="SF1234567890123", actor="p", at=AT)
    return case


def trail(*stages: tuple[int, str], state: str = "in_transit") -> Trail:
    base = datetime(2026, 11, 21, 9, 0, tzinfo=CHINA_STANDARD_TIME)
    return Trail(
        carrier="shunfeng",
        number="SF1234567890123",
        state=state,  # type: ignore[arg-type]
        events=frozenset(TrackingEvent(base + timedelta(hours=h), text) for h, text in stages),
    )


def deadline(delivered: datetime) -> tuple[datetime, datetime]:
    return delivered + timedelta(days=7), delivered + timedelta(days=6)


def names(case: ReturnCase) -> list[str]:
    return [type(e).__name__ for e in case.collect_events()]


def test_rma_is_derived_from_the_refund() -> None:
    assert rma_of("rf_1") == rma_of("rf_1") != rma_of("rf_2")
    assert re.fullmatch(r"RMA-[A-Z2-7]{8}", rma_of("rf_1"))
    assert planned().rma == rma_of("rf_1")


def test_allocation_is_exact_with_the_remainder_last() -> None:
    shares = allocate(cny(10001), [cny(10000), cny(5000)])
    assert shares == [cny(6667), cny(3334)] and sum(s.amount for s in shares) == 10001
    assert allocate(cny(100), [cny(0), cny(0), cny(0)]) == [cny(33), cny(33), cny(34)]
    assert unreturned_share(cny(1001), 3, 1) == cny(667)  # rounded down: customer's favour
    with pytest.raises(ValueError):
        unreturned_share(cny(100), 1, 2)


def test_approval_prices_the_items_from_the_approved_amount() -> None:
    case = requested(10001)
    assert case.state == "awaiting_return" and case.amount == cny(10001)
    assert [item["price"] for item in case.items] == [cny(6667), cny(3334)]
    case.request(amount=cny(1), ship_by=AT, ship_remind_at=AT, decided_by="b", approvers=[], at=AT)
    assert case.amount == cny(10001)  # only a planned return moves
    assert names(case) == ["Planned", "Requested"]
    assert case.history[-1]["actor"] == "ann"


def test_the_first_shipment_counts_and_a_repeat_is_absorbed() -> None:
    case = shipped()
    assert not case.ship(carrier="yuantong", tracking_number="YT1234567890123", actor="p", at=AT)
    assert (case.state, case.carrier) == ("in_transit", "shunfeng")


def test_tracking_records_news_once_and_delivery_once() -> None:
    case = shipped()
    case.collect_events()
    first = trail((0, "揽收"), (5, "在途"))
    assert case.track(first, actor="carrier:kuaidi100", at=AT, receipt_deadline=deadline)
    assert not case.track(first, actor="carrier:kuaidi100", at=AT, receipt_deadline=deadline)
    stale = trail((0, "揽收"))
    assert not case.track(stale, actor="carrier:kuaidi100", at=AT, receipt_deadline=deadline)
    done = trail((0, "揽收"), (5, "在途"), (20, "签收"), state="delivered")
    assert case.track(done, actor="carrier:kuaidi100", at=AT, receipt_deadline=deadline)
    assert case.state == "delivered"
    assert case.delivered_at == datetime(2026, 11, 22, 5, 0, tzinfo=CHINA_STANDARD_TIME)
    assert case.receipt_by == case.delivered_at + timedelta(days=7)
    # The delivered trail again, and an older one after it: nothing new, nothing recorded.
    assert not case.track(done, actor="carrier:kuaidi100", at=AT, receipt_deadline=deadline)
    assert not case.track(first, actor="carrier:kuaidi100", at=AT, receipt_deadline=deadline)
    assert names(case) == ["Tracked", "Tracked", "Delivered"]
    known = case.known_trail()
    assert known is not None and len(known.events) == 3 and known.delivered
    other = Trail(carrier="shunfeng", number="SF9999999999999", state="delivered")
    assert not case.track(other, actor="x", at=AT, receipt_deadline=deadline)


def test_ship_by_reminds_once_then_closes() -> None:
    case = requested()
    assert case.due(SHIP_BY - timedelta(days=3)) is None
    remind = SHIP_BY - timedelta(days=1)
    assert case.due(remind) == "ship_remind"
    case.remind_to_ship(remind)
    case.remind_to_ship(remind)
    assert case.due(remind) is None
    case.close_not_shipped(SHIP_BY)
    assert case.state == "closed_not_shipped" and case.due(SHIP_BY + timedelta(days=9)) is None
    events = case.collect_events()
    assert [type(e).__name__ for e in events][-2:] == ["ShipReminded", "ShipByMissed"]
    assert case.history[-1]["actor"] == "system:return.ship_by_missed"


def test_receipt_deadline_reminds_then_accepts() -> None:
    case = shipped()
    delivered = trail((0, "签收"), state="delivered")
    case.track(delivered, actor="carrier:kuaidi100", at=AT, receipt_deadline=deadline)
    assert case.due(AT) is None and case.receipt_by is not None
    case.remind_to_receive(case.receipt_by - timedelta(hours=1))
    assert case.receipt_reminded
    case.accept_automatically(case.receipt_by)
    assert case.state == "accepted_automatically"
    assert case.history[-1]["actor"] == "system:return.receipt_overdue"


def line(sku: str, quantity: int, condition: str = "as_expected") -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "condition": condition}


def test_receipts_it_cannot_take_are_refused_naming_the_field() -> None:
    with pytest.raises(ReturnStateError):
        requested().check_receipt([line("A", 1)])  # not shipped yet
    case = shipped()
    with pytest.raises(ReceiptRefused) as unknown:
        case.check_receipt([line("A", 1), line("Z", 1)])
    assert unknown.value.field == "items.1.sku"
    with pytest.raises(ReceiptRefused) as above:
        case.check_receipt([line("A", 3)])
    assert above.value.field == "items.0.quantity"
    with pytest.raises(ReceiptRefused) as twice:
        case.check_receipt([line("A", 1), line("A", 1)])
    assert twice.value.code == "duplicate"
    case.check_receipt([line("A", 2), line("B", 1)])


def test_withdrawal_before_receipt_ends_the_return_and_its_timers() -> None:
    case = requested()
    case.withdraw(actor="customer", at=AT)
    assert case.state == "withdrawn" and case.due(SHIP_BY + timedelta(days=1)) is None
    case.withdraw(actor="customer", at=AT)
    assert names(case).count("Withdrawn") == 1
