"""The four worked cases of DOMAIN §8, through intake and review on PostgreSQL.

Integration events are carried between the two applications exactly as the
relay and consumer would (CloudEvents with the source ledger's position), so
each case ends where the domain says, with the rule and policy version on the
refund that the platform sees.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.intake.application import IntakeApplication
from services.intake.domain import RefundRequest
from services.intake.publishing import to_integration as intake_events
from services.review.application import ReviewApplication
from services.review.policy_document import default_policy
from services.review.publishing import to_integration as review_events
from shared.application import ServiceApplication
from shared.contracts import envelope
from shared.ids import public_id
from shared.keystore import open_keystore
from shared.money import Money
from shared.settings import KeystoreSettings, ServiceSettings
from shared.store import store_env

NOW = datetime.now(UTC)
REVIEWER = frozenset({"reviewer"})
SENIOR = frozenset({"senior_reviewer"})
FINANCE = frozenset({"finance"})


@dataclass
class Pipe:
    """Carries each application's published events to the other, like relay + consumer."""

    intake: IntakeApplication
    review: ReviewApplication
    sent: dict[str, int] = field(default_factory=lambda: {"intake": 0, "review": 0})

    def flush(self) -> None:
        moved = True
        while moved:
            moved = self._carry("intake", self.intake, intake_events, self.review)
            moved = self._carry("review", self.review, review_events, self.intake) or moved

    def _carry(
        self,
        source: str,
        origin: ServiceApplication,
        publish: Callable[[Any], Any],
        target: ServiceApplication,
    ) -> bool:
        notifications = origin.recorder.select_notifications(
            start=self.sent[source], limit=1000, inclusive_of_start=False
        )
        for notification in notifications:
            event = origin.mapper.to_domain_event(notification)
            integration = publish(event)
            if integration is not None:
                target.handle(
                    envelope(
                        integration,
                        source=source,
                        event_id=str(uuid.uuid4()),
                        position=notification.id,
                        time=NOW,
                        causation_id=None,
                    )
                )
            self.sent[source] = notification.id
        return bool(notifications)

    def refund(self, refund_id: str) -> RefundRequest:
        return self.intake.refund_for("acme", refund_id)

    def request(self, **draft: Any) -> str:
        refund, _ = self.intake.request_refund(
            tenant="acme", draft=draft, actor="tenant:acme", keyed=None
        )
        self.flush()
        return public_id("rf", refund.id)


@pytest.fixture
def pipe(postgres_url: str, schema_prefix: str) -> Iterator[Pipe]:
    def env(service: str) -> dict[str, str]:
        settings = ServiceSettings(
            database_url=postgres_url, database_schema=f"{schema_prefix}_{service}"
        )
        return store_env(settings, service)

    intake = IntakeApplication(env=env("intake"))
    intake.keystore = open_keystore(
        KeystoreSettings(database_url=postgres_url, database_schema=f"{schema_prefix}_intake"),
        "intake",
    )
    review = ReviewApplication(default_policy(), env=env("review"))
    review.record_shipped_policy()
    yield Pipe(intake, review)
    intake.close()
    review.close()


def ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


def order(
    *lines: dict[str, Any], paid: int, paid_days_ago: float, delivered_days_ago: float | None
) -> dict[str, Any]:
    return {
        "id": f"ORD-{uuid.uuid4().hex[:8]}",
        "customer_id": f"C-{uuid.uuid4().hex[:6]}",
        "paid": {"amount": paid, "currency": "CNY"},
        "paid_at": ago(paid_days_ago),
        "delivered_at": ago(delivered_days_ago) if delivered_days_ago is not None else None,
        "payment": {"method": "alipay", "reference": "2026110122001"},
        "items": list(lines),
        "shipping_fee": None,
        "discount": None,
    }


def line(sku: str, category: str, price: int, **extra: Any) -> dict[str, Any]:
    return {
        "sku": sku,
        "name": sku,
        "category": category,
        "quantity": 1,
        "unit_price": {"amount": price, "currency": "CNY"},
        "custom_made": False,
        "service_period": None,
        **extra,
    }


def draft(snapshot: dict[str, Any], reason: str, **extra: Any) -> dict[str, Any]:
    return {
        "order": snapshot,
        "items": None,
        "amount": None,
        "reason": reason,
        "desired_outcome": "full_refund",
        "description": "",
        "evidence": [],
        "customer": {"email": "li.wei@example.com", "locale": "zh-CN"},
        "channel": "app",
        "metadata": {},
        **extra,
    }


def test_case_1_software_past_its_window_declined_then_granted_as_an_exception(
    pipe: Pipe,
) -> None:
    snapshot = order(line("LIC-PRO", "software", 39900), paid=39900, paid_days_ago=120,
                     delivered_days_ago=None)  # fmt: skip
    refund_id = pipe.request(**draft(snapshot, "service_issue"))
    refund = pipe.refund(refund_id)
    assert refund.status == "rejected"
    assert refund.decision is not None
    assert refund.decision["rule"] == "window.software.closed"
    assert refund.decision["policy_version"] == "2026-11-01"
    assert "30" in refund.decision["explanation"]["zh-CN"]
    # The customer appeals; a reviewer grants an exception, with the reasoning on record.
    pipe.intake.appeal(
        tenant="acme",
        refund_id=refund_id,
        statement="Barely used; the licence server failed for weeks.",
        actor="tenant:acme",
        keyed=None,
    )
    pipe.flush()
    case = pipe.review.case_for(refund_id)
    # An exception to a rule is graded `important`; the appeal takes it one tier higher.
    assert case is not None and case.state == "pending" and case.tier == "major"
    amount = Money(39900, "CNY")
    for person, roles in (("ann", REVIEWER), ("wang", SENIOR)):
        pipe.review.act(
            refund_id,
            lambda c, p=person, r=roles: c.approve(
                person=p, roles=r, amount=amount, liability=None, at=NOW
            ),
        )
    pipe.flush()
    refund = pipe.refund(refund_id)
    assert refund.status == "approved"
    assert refund.decision is not None and refund.decision["decided_by"] == "wang"
    assert [d["outcome"] for d in refund.decisions] == ["rejected", "approved"]


def test_case_2_damaged_marketplace_item_platform_pays_first_and_claims_back(
    pipe: Pipe,
) -> None:
    snapshot = order(line("LAMP", "home", 80000), paid=80000, paid_days_ago=5,
                     delivered_days_ago=3)  # fmt: skip
    photo = {"kind": "photo", "url": "https://cdn.example.com/lamp.jpg", "sku": "LAMP"}
    refund_id = pipe.request(**draft(snapshot, "damaged", evidence=[photo]))
    assert pipe.refund(refund_id).status == "in_review"  # above the automatic limit
    split = {"platform": 10000, "merchant": 30000, "carrier": 40000}
    pipe.review.act(
        refund_id,
        lambda c: c.approve(
            person="ann", roles=REVIEWER, amount=Money(80000, "CNY"), liability=split, at=NOW
        ),
    )
    pipe.flush()
    refund = pipe.refund(refund_id)
    assert refund.status == "approved"
    assert refund.decision is not None and refund.decision["amount"] == Money(80000, "CNY")
    claims = {p: pipe.review.claim(refund_id, p) for p in ("merchant", "carrier")}
    assert {p: c.amount.amount for p, c in claims.items() if c} == {
        "merchant": 30000,
        "carrier": 40000,
    }
    pipe.review.settle_claim(
        refund_id, "carrier", lambda c: c.recover(by="zhao", reference="SF-991", at=NOW)
    )
    pipe.review.settle_claim(
        refund_id, "merchant", lambda c: c.write_off(by="zhao", reason="merchant closed", at=NOW)
    )
    states = {p: pipe.review.claim(refund_id, p) for p in ("merchant", "carrier")}
    assert {p: c.state for p, c in states.items() if c} == {
        "merchant": "written_off",
        "carrier": "recovered",
    }


def test_case_3_membership_special_circumstances_refunds_the_unused_period_pro_rata(
    pipe: Pipe,
) -> None:
    start = NOW - timedelta(days=31)
    membership = line(
        "VIP-YEAR",
        "membership",
        36500,
        service_period={
            "start": start.isoformat(),
            "end": (start + timedelta(days=365)).isoformat(),
        },
    )
    snapshot = order(membership, paid=36500, paid_days_ago=31, delivered_days_ago=31)
    certificate = {"kind": "medical_certificate", "url": "https://cdn.example.com/cert.pdf"}
    refund_id = pipe.request(
        **draft(
            snapshot,
            "special_circumstances",
            evidence=[certificate],
            description="Hospitalised after one month.",
        )
    )
    case = pipe.review.case_for(refund_id)
    assert case is not None
    assert case.assessment["rule"] == "manual.special_circumstances"
    # 334 of 365 days unused (rounded down to the fen): what the policy says is refundable.
    assert case.refundable.amount < 36500
    assert abs(case.refundable.amount - 36500 * 334 // 365) <= 100
    assert pipe.refund(refund_id).status == "in_review"
    refundable = case.refundable
    for person in ("ann", "bob"):
        pipe.review.act(
            refund_id,
            lambda c, p=person: c.approve(
                person=p, roles=REVIEWER, amount=refundable, liability=None, at=NOW
            ),
        )
    pipe.flush()
    refund = pipe.refund(refund_id)
    assert refund.status == "approved"
    assert refund.decision is not None and refund.decision["amount"] == refundable


def test_case_4_custom_order_not_refundable_then_settled_by_a_senior(pipe: Pipe) -> None:
    engraved = line("RING-ENGRAVED", "jewellery", 1_200_000, custom_made=True)
    snapshot = order(engraved, paid=1_200_000, paid_days_ago=6, delivered_days_ago=2)
    refund_id = pipe.request(**draft(snapshot, "changed_mind"))
    refund = pipe.refund(refund_id)
    assert refund.status == "rejected"
    assert refund.decision is not None
    assert refund.decision["rule"] == "non_refundable.custom_made"
    pipe.intake.appeal(
        tenant="acme",
        refund_id=refund_id,
        statement="We would accept a partial refund.",
        actor="tenant:acme",
        keyed=None,
    )
    pipe.flush()
    case = pipe.review.case_for(refund_id)
    assert case is not None and case.tier == "major"
    assert case.needs["count"] == 2 and case.needs["senior"]
    partial = Money(300_000, "CNY")
    pipe.review.act(
        refund_id,
        lambda c: c.approve(person="ann", roles=REVIEWER, amount=partial, liability=None, at=NOW),
    )
    assert pipe.review.case_for(refund_id).state == "pending"  # type: ignore[union-attr]
    pipe.review.act(
        refund_id,
        lambda c: c.approve(person="wang", roles=SENIOR, amount=partial, liability=None, at=NOW),
    )
    pipe.flush()
    refund = pipe.refund(refund_id)
    assert refund.status == "approved"
    assert refund.decision is not None and refund.decision["amount"] == partial
