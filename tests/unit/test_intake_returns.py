"""A return's facts on intake's refund, in memory: the status each step gives in any order,
each upstream event recorded once, withdrawal while the goods are not back, the platform's
shipment, and what the order's balance learns (released when nothing was shipped)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.intake.analytics import Durations
from services.intake.application import UPSTREAM_FACTS, IntakeApplication, facts_for
from services.intake.domain import RefundRequest
from services.intake.lifecycle import LifecycleError
from services.intake.orders import FieldProblems, Order
from services.intake.publishing import to_integration
from services.intake.return_analytics import ReturnFacts, summarise_returns
from shared.contracts import (
    ExchangeReadyV1,
    InspectedLine,
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    ReturnAddressModel,
    ReturnDeadlineMissedV1,
    ReturnDeliveredV1,
    ReturnLine,
    ReturnReceivedV1,
    ReturnRequestedV1,
    ReturnShipByApproachingV1,
    ReturnShippedV1,
    ReviewApprovedV1,
    ReviewRejectedV1,
    envelope,
)
from shared.ids import public_id
from shared.money import Money
from tests.unit.test_intake_domain import NOW, SNAPSHOT, refund

RMA = "RMA-7K3Q9D2M"
POSITIONS = itertools.count(1)


def cny(amount: int) -> MoneyModel:
    return MoneyModel(amount=amount, currency="CNY")


class Review:
    """The return's facts review publishes about one refund, as intake's reaction records
    them (UPSTREAM_FACTS, the payload's fields by name), each under its own message id."""

    def __init__(self, r: RefundRequest) -> None:
        self.refund = r
        self.route = {"refund_id": public_id("rf", r.id), "tenant": "acme", "order_id": "O-1"}

    def send(self, payload: IntegrationEvent, message_id: str | None = None) -> str:
        record = UPSTREAM_FACTS[type(payload)]
        cause = message_id or str(uuid.uuid4())
        record(self.refund, **facts_for(record, payload), causation_id=cause)
        return cause

    def requested(self) -> ReturnRequestedV1:
        return ReturnRequestedV1(
            **self.route,
            rma=RMA,
            desired_outcome="full_refund",
            address=ReturnAddressModel(
                name="退货仓", phone="+86 21 5555 0100", lines=["申江路 100 号"], postcode="201203"
            ),
            items=[ReturnLine(sku="A", quantity=1, price=cny(5000))],
            amount=cny(5000),
            ship_by=NOW + timedelta(days=7),
            policy_version="v1",
            rule="return.quality_defect",
            explanation={"en": "Send it back first."},
            decided_by="system:return.quality_defect",
            requested_at=NOW,
        )

    def reminded(self) -> ReturnShipByApproachingV1:
        return ReturnShipByApproachingV1(
            **self.route, rma=RMA, ship_by=NOW + timedelta(days=7), reminded_at=NOW
        )

    def delivered(self) -> ReturnDeliveredV1:
        return ReturnDeliveredV1(
            **self.route,
            rma=RMA,
            carrier="shunfeng",
            tracking_number="SF1234567890123",
            delivered_at=NOW + timedelta(days=2),
            receipt_by=NOW + timedelta(days=5),
            recorded_at=NOW + timedelta(days=2, minutes=5),
        )

    def received(self, outcome: str = "refund", deducted: int = 500) -> ReturnReceivedV1:
        line = InspectedLine(
            sku="A",
            expected=1,
            received=1,
            condition="damaged_by_customer" if deducted else "as_expected",
            deducted=cny(deducted),
            rule="return.deduct.damage" if deducted else None,
        )
        return ReturnReceivedV1.model_validate(
            {
                **self.route,
                "rma": RMA,
                "items": [line],
                "outcome": outcome,
                "amount": cny(0 if outcome == "reviewer" else 5000 - deducted),
                "deducted": cny(deducted),
                "received_by": "staff:warehouse.li",
                "received_at": NOW + timedelta(days=3),
            }
        )

    def missed(self, deadline: str = "ship_by") -> ReturnDeadlineMissedV1:
        return ReturnDeadlineMissedV1.model_validate(
            {
                **self.route,
                "rma": RMA,
                "deadline": deadline,
                "due": NOW + timedelta(days=7),
                "consequence": "closed" if deadline == "ship_by" else "accepted",
                "rule": f"return.{deadline}_missed",
                "missed_at": NOW + timedelta(days=7, seconds=1),
            }
        )

    def exchange(self, difference: int | None = None) -> ExchangeReadyV1:
        return ExchangeReadyV1(
            **self.route,
            rma=RMA,
            items=[ReturnLine(sku="A", quantity=1, price=cny(5000))],
            difference=cny(difference) if difference else None,
            ready_at=NOW + timedelta(days=3),
        )

    def approved(self, amount: int = 4500) -> ReviewApprovedV1:
        return ReviewApprovedV1(
            **self.route,
            amount=cny(amount),
            payment=PaymentRoute(method="alipay", reference="p-1"),
            policy_version="v1",
            rule="return.inspected",
            decided_by="system:return.inspected",
            decided_at=NOW + timedelta(days=3, minutes=1),
        )

    def rejected(self) -> ReviewRejectedV1:
        return ReviewRejectedV1(
            **self.route,
            policy_version="v1",
            rule="return.wrong_item",
            explanation={"en": "Another item came back."},
            decided_by="staff:reviewer.wu",
            decided_at=NOW + timedelta(days=4),
        )


def ship(r: RefundRequest, number: str = "SF1234567890123", carrier: str = "shunfeng") -> bool:
    return r.ship_return(carrier=carrier, tracking_number=number, actor="tenant:acme", at=NOW)


def returned(*steps: str) -> tuple[RefundRequest, Review]:
    r = refund()
    review = Review(r)
    for step in steps:
        if step == "shipped":
            ship(r)
        else:
            review.send(getattr(review, step)())
    return r, review


class TestStatus:
    @pytest.mark.parametrize(
        ("steps", "status"),
        [
            (("requested",), "awaiting_return"),
            (("requested", "reminded"), "awaiting_return"),
            (("requested", "shipped"), "return_in_transit"),
            (("requested", "shipped", "delivered"), "return_delivered"),
            (("requested", "shipped", "delivered", "received"), "return_received"),
            (("requested", "shipped", "delivered", "received", "approved"), "approved"),
            (("requested", "missed"), "return_not_shipped"),
            (("requested", "shipped", "delivered", "exchange"), "exchange_ready"),
        ],
    )
    def test_the_furthest_step_gives_the_status(self, steps: tuple[str, ...], status: str) -> None:
        r, _ = returned(*steps)
        assert r.status == status
        assert r.timeline[-1]["status"] == status

    def test_an_inspection_that_contradicts_the_claim_goes_to_a_person(self) -> None:
        r, review = returned("requested", "delivered")
        review.send(review.received(outcome="reviewer"))
        assert r.status == "in_review"
        review.send(review.rejected())
        assert r.status == "rejected"

    def test_the_same_facts_in_any_order_give_the_same_refund(self) -> None:
        facts = ("requested", "reminded", "delivered", "received", "approved")
        seen = set()
        for order in itertools.permutations(facts):
            r, _ = returned(*order)
            seen.add((r.status, repr(sorted(r.goods_return.items())), len(r.timeline)))
        assert len(seen) == 1
        [(status, _, entries)] = seen
        assert status == "approved" and entries == 1 + len(facts)

    def test_without_the_decision_any_order_ends_received(self) -> None:
        for order in itertools.permutations(("requested", "delivered", "received", "reminded")):
            assert returned(*order)[0].status == "return_received"

    def test_a_missed_ship_by_date_is_terminal_and_a_decision_still_wins(self) -> None:
        r, review = returned("requested", "missed")
        review.send(review.delivered())  # a late carrier scan changes nothing
        assert r.status == "return_not_shipped"
        exchanged, review = returned("requested", "exchange")
        assert exchanged.status == "exchange_ready"
        review.send(review.approved(amount=300))  # the price difference is refunded
        assert exchanged.status == "approved"

    def test_a_missed_receipt_deadline_counts_the_goods_as_received(self) -> None:
        r, _ = returned("requested", "shipped", "delivered", "missed")
        assert r.status == "return_not_shipped"  # ship_by: closed
        accepted, review = returned("requested", "shipped", "delivered")
        review.send(review.missed("receipt_by"))
        assert accepted.status == "return_received" and accepted.goods_back

    def test_each_upstream_event_is_recorded_once(self) -> None:
        r, review = returned()
        cause = review.send(review.requested())
        version = len(r.pending_events)
        review.send(review.requested(), message_id=cause)  # redelivered
        review.send(review.delivered())
        delivered = r.timeline[-1]
        review.send(review.delivered(), message_id=r.upstream[-1])
        assert len(r.pending_events) == version + 1
        assert r.timeline[-1] == delivered and r.upstream.count(cause) == 1

    def test_each_step_is_in_the_timeline_with_its_actor(self) -> None:
        r, _ = returned("requested", "reminded", "shipped", "delivered", "received", "approved")
        steps = [(e["step"], e["actor"]) for e in r.timeline]
        assert steps == [
            ("submitted", "tenant:acme"),
            ("return_requested", "system:return.quality_defect"),
            ("ship_by_approaching", "service:review"),
            ("return_shipped", "tenant:acme"),
            ("return_delivered", "service:review"),
            ("return_received", "staff:warehouse.li"),
            ("approved", "system:return.inspected"),
        ]
        received = r.timeline[-2]
        assert received["outcome"] == "refund" and received["deducted"] == Money(500, "CNY")

    def test_the_facts_are_kept_as_plain_data_with_money(self) -> None:
        r, _ = returned("requested", "received")
        requested, received = r.goods_return["requested"], r.goods_return["received"]
        assert requested["address"]["postcode"] == "201203"
        assert requested["items"] == [{"sku": "A", "quantity": 1, "price": Money(5000, "CNY")}]
        assert received["items"][0]["deducted"] == Money(500, "CNY")
        assert received["items"][0]["condition"] == "damaged_by_customer"


class TestWithdrawal:
    @pytest.mark.parametrize(
        "steps",
        [("requested",), ("requested", "shipped"), ("requested", "shipped", "delivered")],
    )
    def test_allowed_until_the_goods_are_received(self, steps: tuple[str, ...]) -> None:
        r, _ = returned(*steps)
        r.withdraw(reason="kept it after all", actor="tenant:acme", at=NOW)
        assert r.status == "withdrawn"

    @pytest.mark.parametrize(
        "steps",
        [
            ("requested", "delivered", "received"),
            ("requested", "delivered", "received", "approved"),  # approved, but goods are back
            ("requested", "delivered", "exchange"),
            ("requested", "missed"),
        ],
    )
    def test_refused_once_the_goods_are_back_or_the_return_closed(
        self, steps: tuple[str, ...]
    ) -> None:
        r, _ = returned(*steps)
        with pytest.raises(LifecycleError) as refused:
            r.withdraw(reason="", actor="tenant:acme", at=NOW)
        assert refused.value.code == "not_withdrawable"
        if r.goods_back:
            assert "returned goods were received" in refused.value.message


class TestEvidenceAndAppeal:
    def test_evidence_waits_for_a_person_and_a_rejection_can_be_appealed(self) -> None:
        r, review = returned("requested")
        photo = {"kind": "photo", "url": "https://x/1.jpg", "sku": "A"}
        with pytest.raises(LifecycleError, match="awaiting_return"):
            r.add_evidence(evidence=[photo], note="", actor="tenant:acme", at=NOW)
        review.send(review.received(outcome="reviewer", deducted=0))
        r.add_evidence(evidence=[photo], note="", actor="tenant:acme", at=NOW)  # a person decides
        review.send(review.rejected())
        r.appeal(statement="it was the right item", actor="tenant:acme", at=NOW)
        assert r.status == "in_review" and len(r.appeals) == 1


class TestShipment:
    def test_recorded_normalised_and_published_with_the_rma(self) -> None:
        r, _ = returned("requested")
        assert ship(r, number=" sf1234567890123 ") is True
        assert r.status == "return_in_transit"
        shipped = r.goods_return["shipped"]
        assert (shipped["carrier"], shipped["tracking_number"]) == ("shunfeng", "SF1234567890123")
        assert shipped["actor"] == "tenant:acme"
        published = [to_integration(e) for e in r.collect_events()]
        [event] = [p for p in published if isinstance(p, ReturnShippedV1)]
        assert event.rma == RMA and event.order_id == "O-1" and event.tenant == "acme"
        assert event.tracking_number == "SF1234567890123" and event.shipped_at == NOW

    def test_the_same_shipment_again_changes_nothing_another_is_refused(self) -> None:
        r, _ = returned("requested")
        ship(r)
        r.collect_events()
        assert ship(r, number="sf1234567890123") is False
        assert r.collect_events() == []
        with pytest.raises(LifecycleError) as refused:
            ship(r, number="SF9999999999999")
        assert refused.value.code == "return_already_shipped"
        assert "SF1234567890123" in refused.value.message

    @pytest.mark.parametrize(
        ("carrier", "number", "field"),
        [
            ("fedex", "SF1234567890123", "carrier"),
            ("SHUNFENG", "SF1234567890123", "carrier"),
            ("shunfeng", "YT1234567890123", "tracking_number"),
            ("shunfeng", "SF1", "tracking_number"),
            ("ems", "", "tracking_number"),
        ],
    )
    def test_a_bad_carrier_or_number_names_its_field(
        self, carrier: str, number: str, field: str
    ) -> None:
        r, _ = returned("requested")
        with pytest.raises(FieldProblems) as refused:
            ship(r, number=number, carrier=carrier)
        assert [p.field for p in refused.value.problems] == [field]
        assert r.status == "awaiting_return" and "shipped" not in r.goods_return

    def test_only_a_refund_awaiting_its_return_is_shipped(self) -> None:
        plain = refund()
        with pytest.raises(LifecycleError) as refused:
            ship(plain)
        assert refused.value.code == "no_return_requested"
        withdrawn, _ = returned("requested")
        withdrawn.withdraw(reason="", actor="tenant:acme", at=NOW)
        with pytest.raises(LifecycleError) as late:
            ship(withdrawn)
        assert late.value.code == "not_awaiting_return" and "withdrawn" in late.value.message


class TestOrderBalance:
    """What intake's reaction does to the order's balance (IntakeApplication.handle, as its
    consumer calls it, on a SQLite store)."""

    @pytest.fixture
    def app(self, tmp_path: Path) -> Iterator[IntakeApplication]:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "db")}
        app = IntakeApplication(env=env)
        yield app
        app.close()

    def react(self, app: IntakeApplication, payload: IntegrationEvent) -> Order:
        position = next(POSITIONS)
        message = envelope(
            payload,
            source="review",
            event_id=str(uuid.uuid4()),
            position=position,
            time=NOW,
            causation_id=None,
        )
        assert app.handle(message)
        found: Order = app.repository.get(Order.create_id("acme", "O-1"))
        return found

    def stored(self, app: IntakeApplication) -> Review:
        r = refund()
        order = Order(tenant="acme", order_id="O-1", snapshot=SNAPSHOT)
        order.reserve(str(r.id), r.amount, r.reserved_items)
        app.save(r, order)
        return Review(r)

    def test_a_missed_ship_by_date_releases_the_reservation(self, app: IntakeApplication) -> None:
        review = self.stored(app)
        assert self.react(app, review.requested()).refundable() == Money(7900, "CNY")
        order = self.react(app, review.missed())
        assert order.refundable() == Money(12900, "CNY")
        assert str(review.refund.id) not in order.reservations

    def test_a_missed_receipt_deadline_keeps_it_for_the_payment(
        self, app: IntakeApplication
    ) -> None:
        review = self.stored(app)
        self.react(app, review.requested())
        order = self.react(app, review.missed("receipt_by"))
        assert order.refundable() == Money(7900, "CNY")

    @pytest.mark.parametrize(("difference", "left"), [(None, 12900), (300, 12600)])
    def test_an_exchange_keeps_only_the_price_difference(
        self, app: IntakeApplication, difference: int | None, left: int
    ) -> None:
        review = self.stored(app)
        self.react(app, review.requested())
        assert self.react(app, review.exchange(difference)).refundable() == Money(left, "CNY")


class TestAnalytics:
    """The return figures from the rows ReturnFacts keeps of each refund."""

    def rows(self, *refunds: RefundRequest) -> list[dict[str, Any]]:
        model = object.__new__(ReturnFacts)  # row() needs no store
        return [dict(zip(ReturnFacts.columns, model.row(r), strict=True)) for r in refunds]

    def test_rate_times_conditions_and_deductions(self) -> None:
        kept, _ = returned("requested", "shipped", "delivered", "received", "approved")
        reviewed, review = returned("requested", "shipped", "delivered")
        review.send(review.received(outcome="reviewer", deducted=0))
        approved_only, _ = returned("approved")
        rejected, _ = returned()
        Review(rejected).send(Review(rejected).rejected())
        report = summarise_returns(self.rows(kept, reviewed, approved_only, rejected))
        assert (report.required, report.approved_or_returned) == (2, 3)
        assert report.rate == pytest.approx(2 / 3)
        # Shipped at NOW by the helper, requested at NOW: 0 s; delivered +2 d, received +3 d.
        assert report.stages["requested_to_shipped"] == Durations(2, 0.0, 0.0)
        assert report.stages["delivered_to_received"] == Durations(2, 86400.0, 86400.0)
        assert report.outcomes == {"refund": 1, "reviewer": 1}
        assert report.conditions == {"damaged_by_customer": 1, "as_expected": 1}
        assert report.deductions == {"return.deduct.damage": {"CNY": 500}}

    def test_no_refunds_no_rate(self) -> None:
        report = summarise_returns([])
        assert report.rate is None and report.stages["requested_to_shipped"].count == 0
