"""Events of today's shapes and the means to store them in their first shapes, for the
upcasting tests (tests/unit/test_upcasting*.py): an aggregate from each service's domain whose
events include each reshaped class (`CLASSES`), the `applications` fixture (one of each
service), and `first_shape`: store an aggregate's events, turn one class's event into the shape
the first build that stored it wrote (without a `class_version`), and load them all.

A test module imports the fixture by name:
`from tests.support.upcasting import applications_fixture`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from services.intake.application import IntakeApplication
from services.intake.domain import RefundRequest
from services.notify.application import NotifyApplication
from services.notify.messages.domain import Correspondence
from services.payout.application import PayoutApplication
from services.payout.callbacks import RefusedCallback
from services.payout.domain import Payout
from services.payout.reconcile import ReconciliationReport
from services.review.application import ReviewApplication
from services.review.domain import ReviewCase
from services.review.policy_document import default_policy
from shared.application import ServiceApplication
from shared.money import Money

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # a Friday, 18:00 in Shanghai
CNY_129 = Money(12900, "CNY")
REVIEWER = frozenset({"reviewer"})
ORDER: dict[str, Any] = {
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
            "quantity": 1,
            "unit_price": {"amount": 12900, "currency": "CNY"},
        }
    ],
    "shipping_fee": None,
}

State = dict[str, Any]


# -- today's events, from each service's domain ---------------------------------------------


def requested() -> Aggregate:
    return RefundRequest(
        tenant="acme",
        order=ORDER,
        amount=CNY_129,
        items=[{"sku": "A", "quantity": 1}],
        items_named=True,
        reason="damaged",
        desired_outcome="full_refund",
        description="",
        evidence=[],
        customer={"email": "li.wei@example.com", "locale": "en"},
        channel="app",
        metadata={},
        actor="tenant:acme",
        raised_by="staff:ann",
    )


def correspondence() -> Aggregate:
    """Opened, ContactRecorded, StepScheduled, AttemptStarted, MessageSent (in-app)."""
    c = Correspondence(refund_id="rf_1", tenant="acme")
    c.record_contact(email="li.wei@example.com", phone=None, locale="en", customer_id="C-1")
    key = c.schedule("approved", {"amount": {"amount": 12900, "currency": "CNY"}}, causation_id="e")
    assert key is not None
    assert c.start_attempt(key, "in_app", claim="sender-1") == 1
    c.record_sent(
        step=key,
        channel="in_app",
        message_id="m-1",
        recipient_masked="C-1",
        locale="en",
        template=f"{key}.in_app.en@1",
        sent_at=NOW,
        title="Refund approved",
        body="CNY 129.00 is on its way",
    )
    return c


def _payout() -> Payout:
    return Payout(
        approval_id="ap-1",
        refund_id="rf_1",
        tenant="acme",
        amount=CNY_129,
        method="card",
        payment_reference="p-1",
        causation_id="ap-1",
        payment_currency="USD",
    )


def paid() -> Aggregate:
    """Requested, Dispatched, Succeeded (by a person, recording a manual payment)."""
    p = _payout()
    p.dispatch(NOW)
    p.succeed("gw_1", NOW, via="manual")
    return p


def failed() -> Aggregate:
    p = _payout()
    p.dispatch(NOW)
    p.fail("ACCOUNT_CLOSED", NOW, final=True)
    return p


def refused() -> Aggregate:
    """A provider callback refused at a tenant's Stripe route."""
    return RefusedCallback(
        reason="bad-signature",
        callback_id=None,
        signature="t=1,v1=00",
        body_sha256="0" * 64,
        received_at=NOW,
        source="stripe/acme",
    )


def reconciled() -> Aggregate:
    """A reconciliation of a tenant's Alipay bill."""
    return ReconciliationReport(
        day=NOW.date(),
        digest="d" * 64,
        findings=[{"kind": "matched", "merchant_refund_no": "po_1", "detail": ""}],
        counts={"matched": 1},
        actor="zhao",
        at=NOW,
        provider="alipay",
        tenant="acme",
    )


RULES = {
    "manual": "manual.over_limit",
    "approve": "auto_approve.within_limit",
    "reject": "window.closed",
}


def _case(outcome: str = "manual") -> ReviewCase:
    return ReviewCase(
        refund_id="rf_1",
        tenant="acme",
        order_id="O-1",
        customer_id="C-1",
        requested=Money(20000, "CNY"),
        refundable=CNY_129,
        payment={"method": "alipay", "reference": "p-1"},
        reason="damaged",
        assessment={
            "outcome": outcome,
            "rule": RULES[outcome],
            "refundable": CNY_129,
            "amount": CNY_129,
            "explanation": {"en": "too late"},
            "risk_score": 10,
            "risk_signals": {},
            "tier": "general",
            "approvals": {"count": 1, "senior": False, "finance": False},
            "checks": [],
            "policy_version": "2026-11-01",
        },
        opened_at=NOW,
        causation_id="c-1",
        raised_by="staff:bob",
        evidence=[{"kind": "photo", "url": "https://cdn.example.com/1.jpg"}],
    )


def approved() -> Aggregate:
    """Opened, EvidenceRequested, EvidenceReceived, ApprovalAdded, Approved (by a person)."""
    case = _case()
    case.request_evidence(
        person="ann",
        roles=REVIEWER,
        missing=["photo"],
        message="send a photo",
        remaining_seconds=3600,
        evidence_due=NOW + timedelta(days=3),
        at=NOW,
    )
    case.receive_evidence([{"kind": "photo", "url": "https://cdn.example.com/2.jpg"}], NOW)
    case.approve(
        person="ann",
        roles=REVIEWER,
        amount=CNY_129,
        liability={"merchant": 12900},
        at=NOW,
        note="photo shows the tear",
        coupon=Money(1000, "CNY"),
    )
    return case


def rejected() -> Aggregate:
    case = _case()
    case.reject(
        person="ann",
        roles=REVIEWER,
        reason_code="no_damage",
        explanation={"en": "no damage visible"},
        at=NOW,
        internal_note="same photo as refund rf_1",
    )
    return case


APPLICATIONS: dict[str, Callable[[], ServiceApplication]] = {
    "intake": IntakeApplication,
    "notify": NotifyApplication,
    "payout": PayoutApplication,
    "review": lambda: ReviewApplication(default_policy()),
}

# (service, the aggregate whose events include it, the event class)
CLASSES: list[tuple[str, Callable[[], Aggregate], type]] = [
    ("intake", requested, RefundRequest.Requested),
    ("notify", correspondence, Correspondence.ContactRecorded),
    ("notify", correspondence, Correspondence.StepScheduled),
    ("notify", correspondence, Correspondence.AttemptStarted),
    ("notify", correspondence, Correspondence.MessageSent),
    ("payout", paid, Payout.Requested),
    ("payout", paid, Payout.Succeeded),
    ("payout", failed, Payout.Failed),
    ("payout", paid, Payout.Dispatched),
    ("payout", refused, RefusedCallback.Refused),
    ("payout", reconciled, ReconciliationReport.Recorded),
    ("review", approved, ReviewCase.Opened),
    ("review", approved, ReviewCase.EvidenceRequested),
    ("review", approved, ReviewCase.EvidenceReceived),
    ("review", approved, ReviewCase.ApprovalAdded),
    ("review", approved, ReviewCase.Approved),
    ("review", rejected, ReviewCase.Rejected),
]


# -- storing, reshaping and loading -----------------------------------------------------------


@pytest.fixture(name="applications")
def applications_fixture() -> Iterator[dict[str, ServiceApplication]]:
    opened: dict[str, ServiceApplication] = {}
    yield {name: opened.setdefault(name, make()) for name, make in APPLICATIONS.items()}
    for app in opened.values():
        app.close()


def stored(app: ServiceApplication, aggregate: Aggregate) -> list[StoredEvent]:
    return [app.mapper.to_stored_event(e) for e in aggregate.collect_events()]


def reshaped(
    app: ServiceApplication, events: list[StoredEvent], cls: type, change: Callable[[State], None]
) -> list[StoredEvent]:
    """The events with the one of `cls` re-encoded as `change` makes it, without a version."""
    out = []
    for event in events:
        if event.topic == get_topic(cls):
            state = app.mapper.transcoder.decode(event.state)
            # Today's code stores its class's version (2, or more after later reshapes).
            assert state.pop("class_version") == cls.class_version >= 2  # type: ignore[attr-defined]
            change(state)
            event = replace(event, state=app.mapper.transcoder.encode(state))
        out.append(event)
    assert out != events, f"no {cls.__qualname__} among the events"
    return out


def loaded(app: ServiceApplication, events: list[StoredEvent], cls: type) -> tuple[Any, Any]:
    """(the loaded event of `cls`, the aggregate all the events make)."""
    domain_events = [app.mapper.to_domain_event(e) for e in events]
    aggregate = None
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    (event,) = [e for e in domain_events if type(e) is cls]
    return event, aggregate


def first_shape(
    app: ServiceApplication,
    aggregate: Aggregate,
    cls: type,
    drop: tuple[str, ...] = (),
    add: State | None = None,
) -> tuple[Any, Any]:
    """Store `aggregate`'s events, turn the `cls` one into its first shape, load them all."""

    def change(state: State) -> None:
        for key in drop:
            del state[key]
        state.update(add or {})

    return loaded(app, reshaped(app, stored(app, aggregate), cls, change), cls)
