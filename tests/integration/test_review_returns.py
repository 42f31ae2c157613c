"""Goods back before money back, on a real store with a controllable clock: an approval asks
for the goods instead of paying; the shipment, the carrier's delivery and the warehouse's
receipt lead to exactly one review.approved.v1 (less deductions, less what did not come
back), to an exchange, or back to a person; both deadlines both ways; withdrawal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.review.application import ReviewApplication
from services.review.domain import ReviewCase
from services.review.duties import CaseStateError
from services.review.policy_document import DEFAULT_POLICY_PATH, default_policy, load_policy
from services.review.publishing import to_integration
from services.review.returns.case import ReturnCase
from services.review.returns.trail import CHINA_STANDARD_TIME, TrackingEvent, Trail
from services.review.returns.workers import ReturnWatch
from services.review.sla import RunningClocks
from shared.contracts import (
    CustomerContact,
    IntegrationEvent,
    MoneyModel,
    OrderLine,
    PaymentRoute,
    RefundedItem,
    RefundRequestedV1,
    RefundWithdrawnV1,
    ReturnShippedV1,
    envelope,
)
from tests.support.reads import Reads
from tests.support.review_api import START, Clock  # a Friday, 10:00 in Shanghai

RETURNS_POLICY = load_policy(Path(DEFAULT_POLICY_PATH).with_name("example_return_policy.yaml"))
positions = iter(range(1, 100_000))
TRACKING = "SF1234567890123"


@dataclass
class Desk:
    app: ReviewApplication
    clock: Clock

    def deliver(self, event: IntegrationEvent) -> None:
        message = envelope(
            event,
            source="intake",
            event_id=str(uuid.uuid4()),
            position=next(positions),
            time=self.clock.now,
            causation_id=None,
        )
        assert self.app.handle(message)

    def request(
        self,
        *lines: tuple[str, str, int, int],
        reason: str = "changed_mind",
        outcome: str = "full_refund",
        asked: list[tuple[str, int]] | None = None,
    ) -> str:
        """A refund of whole lines (sku, category, quantity, unit price in fen)."""
        refund_id = f"rf_{uuid.uuid4().hex[:12]}"
        now = self.clock.now
        total = sum(q * p for _, _, q, p in lines)
        items = asked or [(sku, q) for sku, _, q, _ in lines]
        amount = sum(q * p for sku, _, q, p in lines if (sku, q) in items) or total
        self.deliver(
            RefundRequestedV1(
                refund_id=refund_id,
                tenant="acme",
                order_id=f"ORD-{refund_id}",
                customer_id=f"C-{uuid.uuid4().hex[:6]}",
                amount=MoneyModel(amount=amount, currency="CNY"),
                paid=MoneyModel(amount=total, currency="CNY"),
                payment=PaymentRoute(method="alipay", reference="2026110122001"),
                items=[RefundedItem(sku=sku, quantity=q) for sku, q in items],
                reason=reason,
                desired_outcome=outcome,
                channel="app",
                customer=CustomerContact(email="li.wei@example.com"),
                requested_at=now,
                paid_at=now - timedelta(days=4),
                delivered_at=now - timedelta(days=2),
                order_lines=[
                    OrderLine(
                        sku=sku,
                        category=category,
                        quantity=q,
                        unit_price=MoneyModel(amount=p, currency="CNY"),
                    )
                    for sku, category, q, p in lines
                ],
            )
        )
        return refund_id

    def ship(self, refund_id: str, number: str = TRACKING) -> None:
        self.deliver(
            ReturnShippedV1(
                refund_id=refund_id,
                tenant="acme",
                order_id=f"ORD-{refund_id}",
                carrier="shunfeng",
                tracking_number=number,
                actor="tenant:acme",
                shipped_at=self.clock.now,
            )
        )

    def deliver_parcel(self, number: str = TRACKING, at: datetime | None = None) -> bool:
        moment = (at or self.clock.now).astimezone(CHINA_STANDARD_TIME).replace(microsecond=0)
        return self.app.returns.track(
            Trail(
                carrier="shunfeng",
                number=number,
                state="delivered",
                events=frozenset(
                    {
                        TrackingEvent(moment - timedelta(days=1), "已揽收"),
                        TrackingEvent(moment, "已签收"),
                    }
                ),
            ),
            actor="carrier:kuaidi100",
        )

    def receive(self, refund_id: str, *lines: dict[str, Any]) -> ReturnCase:
        found, _ = self.app.returns.receive_once(
            refund_id, list(lines), note="", person="wh.li", keyed=None
        )
        return found

    def returned(self, refund_id: str) -> ReturnCase:
        return self.app.returns.of(refund_id)

    def case(self, refund_id: str) -> ReviewCase:
        return self.app.case(refund_id)

    def published(self, refund_id: str) -> list[IntegrationEvent]:
        notifications = self.app.recorder.select_notifications(start=1, limit=10_000)
        found = [to_integration(self.app.mapper.to_domain_event(n)) for n in notifications]
        return [e for e in found if e is not None and e.refund_id == refund_id]

    def types(self, refund_id: str) -> list[str]:
        return [e.TYPE for e in self.published(refund_id)]

    def tick(self, at: datetime) -> int:
        self.clock.now = at
        watch = ReturnWatch(self.app)
        watch.catch_up()
        acted = self.app.returns.tick(sorted(watch.clocked))
        return acted + self.app.tick(sorted(RunningClocks(self.app).catch_up()))


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    clock = Clock()
    store = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "review.sqlite"),
        "SINGLE_ROW_TRACKING": "n",
    }
    app = ReviewApplication(RETURNS_POLICY, env=store, clock=clock)
    app.record_shipped_policy()
    yield Desk(app, clock)
    app.close()


def item(sku: str, quantity: int, condition: str = "as_expected", **more: Any) -> dict[str, Any]:
    return {"sku": sku, "quantity": quantity, "condition": condition, **more}


def approved(desk: Desk, refund_id: str) -> list[Any]:
    return [e for e in desk.published(refund_id) if e.TYPE == "review.approved.v1"]


# -- approval asks for the goods ----------------------------------------------------------------


def test_an_approval_by_rule_asks_for_the_goods_instead_of_paying(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 1, 19900))
    assert desk.case(refund_id).state == "approved"
    found = desk.returned(refund_id)
    assert found.state == "awaiting_return" and found.rule == "return.no_reason"
    assert found.ship_by is not None and found.ship_by > START + timedelta(days=7)
    assert desk.types(refund_id) == ["refund.return_requested.v1"]
    (requested,) = desk.published(refund_id)
    assert requested.rma == found.rma and requested.amount.amount == 19900  # type: ignore[attr-defined]
    assert requested.items[0].price.amount == 19900  # type: ignore[attr-defined]
    assert requested.address.postcode == "201203"  # type: ignore[attr-defined]


def test_a_refund_that_needs_no_return_pays_at_once(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 1, 3000), reason="not_received")
    assert desk.app.returns.get(refund_id) is None
    assert desk.types(refund_id) == ["review.approved.v1"]


def test_without_a_returns_section_nothing_changes(tmp_path: Path) -> None:
    store = {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "plain.sqlite"),
        "SINGLE_ROW_TRACKING": "n",
    }
    app = ReviewApplication(default_policy(), env=store, clock=Clock())
    try:
        desk = Desk(app, Clock())
        refund_id = desk.request(("TEE", "apparel", 1, 19900))
        assert app.returns.get(refund_id) is None
        assert desk.types(refund_id) == ["review.approved.v1"]
    finally:
        app.close()


def test_people_s_approval_asks_for_the_goods_too(desk: Desk) -> None:
    refund_id = desk.request(("TV", "electronics", 1, 80000))  # above 500.00: a person
    assert desk.returned(refund_id).state == "planned"
    money = desk.case(refund_id).refundable

    def approve(case: ReviewCase) -> None:
        case.approve(
            person="ann", roles=frozenset({"reviewer"}), amount=money, liability=None, at=START
        )

    desk.app.act(refund_id, approve)
    assert desk.returned(refund_id).state == "awaiting_return"
    assert desk.returned(refund_id).history[-1]["actor"] == "ann"
    assert desk.types(refund_id) == ["review.case_opened.v1", "refund.return_requested.v1"]


# -- receipt → money ----------------------------------------------------------------------------


def test_the_happy_path_pays_once_after_the_receipt(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 2, 9950))
    desk.ship(refund_id)
    desk.ship(refund_id)  # published twice: absorbed
    assert desk.returned(refund_id).state == "in_transit"
    assert desk.deliver_parcel()
    assert not desk.deliver_parcel()  # the same trail again: nothing new
    assert desk.returned(refund_id).state == "delivered"
    found = desk.receive(refund_id, item("TEE", 2))
    assert found.state == "paid"
    assert desk.types(refund_id) == [
        "refund.return_requested.v1",
        "return.delivered.v1",
        "return.received.v1",
        "review.approved.v1",
    ]
    (paid,) = approved(desk, refund_id)
    assert paid.amount.amount == 19900 and paid.rule == "return.received_as_expected"
    assert paid.decided_by == "system:return.received_as_expected"
    assert desk.case(refund_id).decision["awaiting_return"] is False  # type: ignore[index]


def test_a_deduction_pays_less_and_cites_its_rule(desk: Desk) -> None:
    refund_id = desk.request(("PHONE", "electronics", 1, 40000))  # 400.00: approved by rule
    desk.ship(refund_id)
    desk.receive(refund_id, item("PHONE", 1))  # in transit: the warehouse may record
    (paid,) = approved(desk, refund_id)
    assert paid.amount.amount == 36000  # 10 % restocking fee for electronics
    assert paid.rule == "deduction.restocking_electronics"
    received = desk.published(refund_id)[-2]
    assert received.TYPE == "return.received.v1"
    assert received.deducted.amount == 4000  # type: ignore[attr-defined]
    assert received.items[0].rule == "deduction.restocking_electronics"  # type: ignore[attr-defined]


def test_a_partial_return_pays_only_what_came_back(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 2, 10000), ("CAP", "apparel", 1, 5001))
    desk.ship(refund_id)
    desk.deliver_parcel()
    desk.receive(refund_id, item("TEE", 1))  # one of two tees, no cap
    (paid,) = approved(desk, refund_id)
    assert paid.amount.amount == 10000  # 250.01 approved: 100.00 for the tee that came back
    lines = desk.published(refund_id)[-2].items  # type: ignore[attr-defined]
    assert [(line.sku, line.expected, line.received) for line in lines] == [
        ("TEE", 2, 1),
        ("CAP", 1, 0),
    ]


def test_a_wrong_item_goes_back_to_a_person_who_decides_once(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 1, 19900))
    desk.ship(refund_id)
    desk.deliver_parcel()
    found = desk.receive(refund_id, item("TEE", 1, "wrong_item", photos=["https://x.cn/1.jpg"]))
    assert found.state == "with_reviewer"
    case = desk.case(refund_id)
    assert case.state == "pending" and case.round == 2 and case.deadline is not None
    assert desk.types(refund_id)[-1] == "return.received.v1"
    assert desk.published(refund_id)[-1].outcome == "reviewer"  # type: ignore[attr-defined]
    assert approved(desk, refund_id) == []

    def approve(amount: int) -> Any:
        def change(case: ReviewCase) -> None:
            case.approve(
                person="ann",
                roles=frozenset({"reviewer"}),
                amount=case.refundable.__class__(amount, "CNY"),
                liability=None,
                at=desk.clock.now,
            )

        return change

    with pytest.raises(CaseStateError, match=r"between 1 and CNY 199\.00"):
        desk.app.act(refund_id, approve(19901))  # never above what was approved
    desk.app.act(refund_id, approve(10000))
    (paid,) = approved(desk, refund_id)  # goods are back: paid at once, no second return
    assert paid.amount.amount == 10000 and paid.decided_by == "ann"
    assert desk.returned(refund_id).state == "with_reviewer"


def test_an_exchange_at_the_same_price_moves_no_money(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 1, 19900), outcome="exchange")
    zero = desk.case(refund_id).refundable.__class__(0, "CNY")

    def approve(case: ReviewCase) -> None:
        case.approve(
            person="ann", roles=frozenset({"reviewer"}), amount=zero, liability=None, at=START
        )

    desk.app.act(refund_id, approve)
    desk.ship(refund_id)
    found = desk.receive(refund_id, item("TEE", 1))
    assert found.state == "exchange_ready"
    assert desk.types(refund_id)[-2:] == ["return.received.v1", "refund.exchange_ready.v1"]
    assert approved(desk, refund_id) == []
    assert desk.published(refund_id)[-1].difference is None  # type: ignore[attr-defined]


def test_an_exchange_with_a_price_difference_refunds_it(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 1, 19900), outcome="exchange")
    difference = desk.case(refund_id).refundable.__class__(2000, "CNY")

    def approve(case: ReviewCase) -> None:
        case.approve(
            person="ann",
            roles=frozenset({"reviewer"}),
            amount=difference,
            liability=None,
            at=START,
        )

    desk.app.act(refund_id, approve)
    desk.ship(refund_id)
    desk.receive(refund_id, item("TEE", 1))
    assert desk.types(refund_id)[-3:] == [
        "return.received.v1",
        "refund.exchange_ready.v1",
        "review.approved.v1",
    ]
    (paid,) = approved(desk, refund_id)
    assert paid.amount.amount == 2000
    assert desk.published(refund_id)[-2].difference.amount == 2000  # type: ignore[attr-defined]


# -- deadlines ------------------------------------------------------------------------------


def test_ship_by_reminds_once_then_closes(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 1, 19900))
    ship_by = desk.returned(refund_id).ship_by
    assert ship_by is not None
    assert desk.tick(ship_by - timedelta(days=3)) == 0
    assert desk.tick(ship_by - timedelta(days=1)) == 1
    assert desk.tick(ship_by - timedelta(hours=1)) == 0  # reminded once
    assert desk.tick(ship_by) == 1
    assert desk.returned(refund_id).state == "closed_not_shipped"
    assert desk.tick(ship_by + timedelta(days=30)) == 0
    types = desk.types(refund_id)
    assert types == [
        "refund.return_requested.v1",
        "return.ship_by_approaching.v1",
        "return.deadline_missed.v1",
    ]
    missed = desk.published(refund_id)[-1]
    assert (missed.deadline, missed.consequence, missed.rule) == (  # type: ignore[attr-defined]
        "ship_by",
        "closed",
        "return.ship_by_missed",
    )


def test_shipped_in_time_no_ship_deadline_fires(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 1, 19900))
    ship_by = desk.returned(refund_id).ship_by
    assert ship_by is not None
    desk.ship(refund_id)
    assert desk.tick(ship_by + timedelta(days=1)) == 0
    assert desk.returned(refund_id).state == "in_transit"


def test_receipt_overdue_accepts_and_pays_in_full(desk: Desk) -> None:
    refund_id = desk.request(("PHONE", "electronics", 1, 40000))
    desk.ship(refund_id)
    desk.deliver_parcel()
    receipt_by = desk.returned(refund_id).receipt_by
    assert receipt_by is not None
    assert desk.tick(receipt_by - timedelta(hours=12)) == 1  # the warehouse's reminder
    assert desk.returned(refund_id).receipt_reminded
    assert desk.tick(receipt_by - timedelta(hours=1)) == 0  # once
    assert desk.tick(receipt_by) == 1
    assert desk.returned(refund_id).state == "accepted_automatically"
    assert desk.types(refund_id)[-2:] == ["return.deadline_missed.v1", "review.approved.v1"]
    (paid,) = approved(desk, refund_id)
    assert paid.amount.amount == 40000  # in full: no inspection, no restocking fee
    assert paid.decided_by == "system:return.receipt_overdue"
    assert desk.tick(receipt_by + timedelta(days=9)) == 0
    assert len(approved(desk, refund_id)) == 1


def test_receipt_in_time_nothing_is_accepted_automatically(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 1, 19900))
    desk.ship(refund_id)
    desk.deliver_parcel()
    receipt_by = desk.returned(refund_id).receipt_by
    assert receipt_by is not None
    desk.receive(refund_id, item("TEE", 1))
    assert desk.tick(receipt_by + timedelta(days=1)) == 0
    assert len(approved(desk, refund_id)) == 1


def test_withdrawal_before_receipt_ends_the_return(desk: Desk) -> None:
    refund_id = desk.request(("TEE", "apparel", 1, 19900))
    desk.ship(refund_id)
    desk.deliver(
        RefundWithdrawnV1(
            refund_id=refund_id,
            tenant="acme",
            order_id=f"ORD-{refund_id}",
            reason="",
            actor="customer",
            withdrawn_at=desk.clock.now,
        )
    )
    assert desk.returned(refund_id).state == "withdrawn"
    assert not desk.deliver_parcel()  # tracked, but no delivery of a withdrawn return
    assert desk.tick(START + timedelta(days=60)) == 0
    assert approved(desk, refund_id) == []


def test_a_parcel_already_shipped_for_another_return_is_not_taken_twice(desk: Desk) -> None:
    first = desk.request(("TEE", "apparel", 1, 19900))
    second = desk.request(("CAP", "apparel", 1, 9900))
    desk.ship(first)
    desk.ship(second)  # the same carrier and number: the push could not tell them apart
    assert desk.returned(first).state == "in_transit"
    assert desk.returned(second).state == "awaiting_return"
    assert desk.deliver_parcel()
    assert (desk.returned(first).state, desk.returned(second).state) == (
        "delivered",
        "awaiting_return",
    )


def test_the_return_watch_starts_from_its_checkpoint(desk: Desk) -> None:
    """A restarted watch knows each return's sets and shipment from its checkpoint and reads
    only what came after it (the whole log is never read again)."""
    desk.request(("TEE", "apparel", 1, 9950))  # its ship-by clock runs
    shipped = desk.request(("MUG", "home", 1, 5000))
    desk.ship(shipped)  # on its way: to subscribe and to poll
    first = ReturnWatch(desk.app, "carrier_poller")
    first.catch_up()
    first.save()
    known = (first.clocked, first.unsubscribed, first.in_transit, first.shipments)

    reads = Reads(desk.app)
    restarted = ReturnWatch(desk.app, "carrier_poller")
    restarted.catch_up()
    assert (restarted.clocked, restarted.unsubscribed, restarted.in_transit) == known[:3]
    assert restarted.shipments == known[3] and reads.events == 0
    assert len(restarted.clocked) == 1 and len(restarted.in_transit) == 1

    assert desk.deliver_parcel()  # the shipped one arrives: its receipt clock runs
    restarted.catch_up()
    restarted.save()
    reads.events = 0
    again = ReturnWatch(desk.app, "carrier_poller")
    again.catch_up()
    assert again.in_transit == set() and reads.events == 0
    assert len(again.clocked) == 2  # the ship-by of one, the receipt of the other
