"""Intake's rules in memory: lifecycle of a refund, the order's balance, idempotency keys."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.domain import LifecycleError, RefundRequest
from services.intake.orders import FieldProblems, Order, OverRefund
from shared.idempotency import IdempotencyKey, IdempotencyMismatch, KeyedRequest
from shared.money import Money

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
SNAPSHOT: dict[str, Any] = {
    "id": "O-1",
    "customer_id": "C-1",
    "paid": {"amount": 12900, "currency": "CNY"},
    "paid_at": "2026-11-01T10:00:00Z",
    "delivered_at": None,
    "payment": {"method": "alipay", "reference": "p-1"},
    "items": [
        {
            "sku": "A",
            "category": "apparel",
            "quantity": 2,
            "unit_price": {"amount": 5000, "currency": "CNY"},
        },
        {
            "sku": "B",
            "category": "apparel",
            "quantity": 1,
            "unit_price": {"amount": 2900, "currency": "CNY"},
        },
    ],
    "shipping_fee": None,
}


def refund(amount: int = 5000) -> RefundRequest:
    return RefundRequest(
        tenant="acme",
        order=SNAPSHOT,
        amount=Money(amount, "CNY"),
        items=[{"sku": "A", "quantity": 1}],
        items_named=True,
        reason="damaged",
        desired_outcome="full_refund",
        description="",
        evidence=[],
        customer={"email": "a@x.cn", "locale": "en"},
        channel="app",
        metadata={},
        actor="tenant:acme",
        raised_by=None,
    )


def approve(r: RefundRequest, cause: str = "c-approve") -> None:
    r.record_approval(
        amount=r.amount,
        policy_version="v1",
        rule="auto",
        decided_by="system:auto",
        decided_at=NOW,
        causation_id=cause,
    )


def reject(r: RefundRequest, cause: str = "c-reject") -> None:
    r.record_rejection(
        policy_version="v1",
        rule="window.closed",
        explanation={"en": "too late", "zh-CN": "已超期"},
        decided_by="system:window.closed",
        decided_at=NOW,
        causation_id=cause,
    )


def pay(r: RefundRequest, cause: str = "c-paid") -> None:
    r.record_payment(
        payout_id="po_1",
        amount=r.amount,
        method="alipay",
        provider_reference="gw-1",
        paid_at=NOW,
        expected_arrival=NOW,
        causation_id=cause,
    )


class TestStatus:
    def test_facts_in_any_order_give_the_same_status(self) -> None:
        first, second = refund(), refund()
        approve(first)
        pay(first)
        pay(second)
        approve(second)
        assert first.status == second.status == "paid"
        assert [e["step"] for e in second.timeline] == ["submitted", "paid", "approved"]

    def test_one_decision_per_round_and_each_upstream_event_once(self) -> None:
        r = refund()
        approve(r)
        reject(r)
        approve(r)  # the same approval redelivered
        assert r.status == "approved"
        assert len(r.decisions) == 1

    def test_a_payment_after_a_failure_wins(self) -> None:
        r = refund()
        r.record_payout_failure(payout_id="po", cause="timeout", failed_at=NOW, causation_id="f")
        assert r.status == "payout_failed"
        pay(r)
        assert r.status == "paid"


class TestLifecycle:
    def test_withdraw_until_the_payout_starts(self) -> None:
        r = refund()
        approve(r)
        r.withdraw(reason="found it", actor="tenant:acme", at=NOW)
        assert r.status == "withdrawn"
        with pytest.raises(LifecycleError, match="already withdrawn"):
            r.withdraw(reason="", actor="tenant:acme", at=NOW)
        paid = refund()
        pay(paid)
        with pytest.raises(LifecycleError, match="payout has already started") as refused:
            paid.withdraw(reason="", actor="tenant:acme", at=NOW)
        assert refused.value.code == "not_withdrawable"

    def test_evidence_while_undecided_only_and_linked_to_the_order(self) -> None:
        r = refund()
        photo = {"kind": "photo", "url": "https://x/1.jpg", "sku": "A"}
        r.add_evidence(evidence=[photo], note="", actor="tenant:acme", at=NOW)
        assert r.evidence == [photo] and r.status == "submitted"
        with pytest.raises(FieldProblems) as unknown:
            r.add_evidence(evidence=[{**photo, "sku": "Z"}], note="", actor="tenant:acme", at=NOW)
        assert unknown.value.problems[0].field == "evidence.0.sku"
        approve(r)
        with pytest.raises(LifecycleError, match="until a decision"):
            r.add_evidence(evidence=[photo], note="", actor="tenant:acme", at=NOW)

    def test_appeal_once_per_rejection_then_a_new_round(self) -> None:
        r = refund()
        with pytest.raises(LifecycleError, match="only a rejected refund"):
            r.appeal(statement="please", actor="tenant:acme", at=NOW)
        reject(r)
        r.appeal(statement="the stain was there", actor="tenant:acme", at=NOW)
        assert r.status == "in_review" and r.decision is None
        with pytest.raises(LifecycleError):
            r.appeal(statement="again", actor="tenant:acme", at=NOW)
        reject(r, cause="c-reject-2")
        r.appeal(statement="second decision, second appeal", actor="tenant:acme", at=NOW)
        assert len(r.appeals) == 2 and len(r.decisions) == 2

    def test_receipt_only_after_payment_then_closed(self) -> None:
        r = refund()
        with pytest.raises(LifecycleError, match="once the refund is paid"):
            r.confirm_receipt(actor="tenant:acme", at=NOW)
        approve(r)
        pay(r)
        r.confirm_receipt(actor="tenant:acme", at=NOW)
        assert r.status == "closed"


class TestOrderBalance:
    def order(self) -> Order:
        return Order(tenant="acme", order_id="O-1", snapshot=SNAPSHOT)

    def test_partial_refunds_up_to_what_was_paid(self) -> None:
        o = self.order()
        o.reserve("r1", Money(5000, "CNY"), {"A": 1})
        o.reserve("r2", Money(5000, "CNY"), {"A": 1})
        assert o.refundable() == Money(2900, "CNY")
        with pytest.raises(OverRefund) as refused:
            o.reserve("r3", Money(3000, "CNY"), {"A": 1}, item_paths={"A": "items.0.quantity"})
        fields = {p.field: p.code for p in refused.value.problems}
        assert fields == {
            "amount.amount": "exceeds_refundable",
            "items.0.quantity": "exceeds_refundable",
        }
        assert "CNY 29.00" in str(refused.value)

    def test_release_and_settle_give_balance_back(self) -> None:
        o = self.order()
        o.reserve("r1", Money(12900, "CNY"), {})
        o.release("r1", why="rejected")
        o.release("r1", why="rejected")  # idempotent
        assert o.refundable() == Money(12900, "CNY")
        o.reserve("r2", Money(10000, "CNY"), {})
        o.settle("r2", Money(6000, "CNY"))
        assert o.refundable() == Money(6900, "CNY")
        assert [type(e).__name__ for e in o.collect_events()] == [
            "Recorded",
            "Reserved",
            "Released",
            "Reserved",
            "Settled",
        ]

    def test_a_later_snapshot_must_agree(self) -> None:
        o = self.order()
        assert o.disagreements(SNAPSHOT) == []
        changed = {**SNAPSHOT, "paid": {"amount": 99, "currency": "CNY"}, "delivered_at": "x"}
        assert [p.field for p in o.disagreements(changed)] == ["order.paid"]
        o.record_delivery("2026-11-03T10:00:00Z")
        later = {**SNAPSHOT, "delivered_at": "2026-11-04T10:00:00Z"}
        assert [p.field for p in o.disagreements(later)] == ["order.delivered_at"]


class TestIdempotencyKey:
    def test_replays_then_expires(self) -> None:
        request = KeyedRequest("acme", "k", "fp")
        uid = uuid.uuid4()
        key = IdempotencyKey(
            scope="acme",
            key="k",
            fingerprint="fp",
            outcome={"status": 201, "aggregate_id": str(uid), "version": 1},
            expires_at=NOW + timedelta(hours=24),
        )
        remembered = key.answer(request, NOW)
        assert remembered is not None and remembered.aggregate_id == uid
        with pytest.raises(IdempotencyMismatch):
            key.answer(KeyedRequest("acme", "k", "other"), NOW)
        assert key.answer(request, NOW + timedelta(hours=24)) is None
        assert key.id == request.record_id != KeyedRequest("other", "k", "fp").record_id


class TestPublishing:
    def test_each_platform_action_becomes_its_integration_event(self) -> None:
        from services.intake.publishing import to_integration

        r = refund()
        r.add_evidence(
            evidence=[{"kind": "photo", "url": "https://x/1.jpg"}], note="n", actor="t", at=NOW
        )
        reject(r)
        r.appeal(statement="it was broken", actor="tenant:acme", at=NOW)
        approve(r, cause="c-approve-2")
        pay(r)
        r.confirm_receipt(actor="tenant:acme", at=NOW)
        withdrawn = refund()
        withdrawn.withdraw(reason="found it", actor="tenant:acme", at=NOW)
        events = [*r.collect_events(), *withdrawn.collect_events()]
        published = [to_integration(e) for e in events]
        types = [p.TYPE for p in published if p is not None]
        assert types == [
            "refund.requested.v1",
            "refund.evidence_added.v1",
            "refund.appealed.v1",
            "refund.receipt_confirmed.v1",
            "refund.requested.v1",
            "refund.withdrawn.v1",
        ]
        appealed = next(p for p in published if p is not None and p.TYPE == "refund.appealed.v1")
        assert appealed.model_dump()["appealed_rule"] == "window.closed"
        assert all(p.tenant == "acme" for p in published if p is not None)

    def test_who_raised_it_for_the_customer_travels_to_review(self) -> None:
        from services.intake.publishing import to_integration

        r = RefundRequest(
            tenant="acme",
            order=SNAPSHOT,
            amount=Money(5000, "CNY"),
            items=[{"sku": "A", "quantity": 1}],
            items_named=True,
            reason="damaged",
            desired_outcome="full_refund",
            description="",
            evidence=[],
            customer={"phone": "+8613800000000", "locale": "zh-CN"},
            channel="phone",
            metadata={},
            actor="tenant:acme",
            raised_by="cs.zhang",
        )
        published = to_integration(r.collect_events()[0])
        assert published is not None and published.model_dump()["raised_by"] == "cs.zhang"


def test_every_upstream_fact_is_recorded_from_fields_its_event_carries() -> None:
    """The application hands each record_… method the payload's fields of the same names."""
    from services.intake.application import UPSTREAM_FACTS, recorded_fields

    for payload_type, record in UPSTREAM_FACTS.items():
        missing = set(recorded_fields(record)) - set(payload_type.model_fields)
        assert not missing, f"{payload_type.TYPE} has no {sorted(missing)}"
