"""Every stored event class whose fields changed since the first commit reads its first shape.

For each of the 14 classes (services/<svc>/upcasting.py), an event made by today's code is
stored through its service's mapper, turned into the shape the first build that stored it
wrote (the history report of issue 15, §3: fields taken away, fields it had put back, and no
`class_version`, as nothing was stored with one), loaded with `mapper.to_domain_event` and
applied to its aggregate: it loads with the documented values. An event of today's shape
stored without a version, as 0.1.0 stored every event, loads unchanged.
"""

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
from services.intake.tenants import ApiKey
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
from tests.unit.test_event_versions import stored_event_classes

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


@pytest.fixture
def applications() -> Iterator[dict[str, ServiceApplication]]:
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


# -- a 0.1.0 event (today's shape, no version) passes unchanged ------------------------------


@pytest.mark.parametrize(
    ("service", "aggregate", "cls"), CLASSES, ids=[c.__qualname__ for _, _, c in CLASSES]
)
def test_an_event_of_0_1_0_s_shape_loads_unchanged(
    applications: dict[str, ServiceApplication],
    service: str,
    aggregate: Callable[[], Aggregate],
    cls: type,
) -> None:
    app = applications[service]
    made = aggregate()
    originals = [e for e in made.pending_events if type(e) is cls]
    events = stored(app, made)
    (new,) = [e for e in events if e.topic == get_topic(cls)]
    version = cls.class_version  # type: ignore[attr-defined]
    assert f'"class_version":{version}'.encode() in new.state  # new events say their version
    unversioned = reshaped(app, events, cls, lambda state: None)
    event, _ = loaded(app, unversioned, cls)
    assert vars(event) == vars(originals[0])
    state = app.mapper.transcoder.decode(new.state)
    state.pop("class_version")
    before = dict(state)
    cls.upcast_v1_v2(state)
    assert state == before


# -- each first shape loads with the documented values ---------------------------------------


def test_intake_requested_of_a2f9b37(applications: dict[str, ServiceApplication]) -> None:
    event, refund = first_shape(
        applications["intake"],
        requested(),
        RefundRequest.Requested,
        drop=("items_named", "raised_by"),
        add={"request_key": "acme/k-1", "fingerprint": "f" * 64},
    )
    assert not hasattr(event, "request_key") and not hasattr(event, "fingerprint")
    # The first API filled in the whole order when a request named no items: unknown, so
    # only the amount is reserved.
    assert refund.items_named is False and refund.reserved_items == {}
    assert refund.raised_by is None
    assert refund.amount == CNY_129


def test_notify_contact_recorded_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    _, c = first_shape(
        applications["notify"],
        correspondence(),
        Correspondence.ContactRecorded,
        drop=("customer_id",),
    )
    assert c.contact.customer_id is None and c.contact.email == "li.wei@example.com"


def test_notify_step_scheduled_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, c = first_shape(
        applications["notify"],
        correspondence(),
        Correspondence.StepScheduled,
        add={"channel": "email"},  # scheduled per channel then
    )
    assert not hasattr(event, "channel")
    assert [s.facts for s in c.occurrences("approved")] == [
        {"amount": {"amount": 12900, "currency": "CNY"}}
    ]


def test_notify_attempt_started_of_427a8f2(applications: dict[str, ServiceApplication]) -> None:
    event, _ = first_shape(
        applications["notify"],
        correspondence(),
        Correspondence.AttemptStarted,
        drop=("claim",),
    )
    assert event.claim is None and event.attempt == 1


def test_notify_message_sent_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, c = first_shape(
        applications["notify"],
        correspondence(),
        Correspondence.MessageSent,
        drop=("customer_id", "title", "body"),
    )
    assert (event.customer_id, event.title, event.body) == (None, None, None)
    assert c.is_sent(event.step, "in_app")


def test_payout_requested_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, payout = first_shape(
        applications["payout"],
        paid(),
        Payout.Requested,
        drop=("payment_currency",),
    )
    assert event.payment_currency is None and payout.payment_currency is None


def test_payout_succeeded_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, payout = first_shape(
        applications["payout"],
        paid(),
        Payout.Succeeded,
        drop=("via", "actor", "settlement", "fx"),
    )
    assert (event.via, event.actor, event.settlement, event.fx) == ("gateway", None, None, None)
    assert payout.status == "paid" and payout.provider_reference == "gw_1"


def test_payout_failed_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, payout = first_shape(
        applications["payout"],
        failed(),
        Payout.Failed,
        drop=("provider_final",),
    )
    assert event.provider_final is False and payout.last_failure_final is False
    assert payout.status == "failed"


def test_payout_dispatched_of_0_3_0(applications: dict[str, ServiceApplication]) -> None:
    """0.3.0 named no provider: a request went to the sandbox gateway, or was store credit."""
    event, payout = first_shape(
        applications["payout"], paid(), Payout.Dispatched, drop=("provider",)
    )
    assert event.provider == "gateway"
    assert payout.provider_of(payout.number, "card") == "gateway"
    credit = _payout()
    credit.method = "store_balance"  # as a switch to store balance leaves it
    credit.dispatch(NOW, "store_balance")
    event, loaded_credit = first_shape(
        applications["payout"], credit, Payout.Dispatched, drop=("provider",)
    )
    assert event.provider == "store_balance"
    assert loaded_credit.provider_of(loaded_credit.number, "store_balance") == "store_balance"


def test_refused_callback_of_0_3_0(applications: dict[str, ServiceApplication]) -> None:
    """0.3.0 had one callback route, the gateway's."""
    event, refused_there = first_shape(
        applications["payout"], refused(), RefusedCallback.Refused, drop=("source",)
    )
    assert event.source == "gateway" and refused_there.source == "gateway"
    assert refused_there.reason == "bad-signature"


def test_reconciliation_recorded_of_0_3_0(applications: dict[str, ServiceApplication]) -> None:
    """0.3.0 reconciled only the gateway's settlement file."""
    event, report = first_shape(
        applications["payout"],
        reconciled(),
        ReconciliationReport.Recorded,
        drop=("provider", "tenant"),
    )
    assert (event.provider, event.tenant) == ("gateway", None)
    assert (report.provider, report.tenant) == ("gateway", None)
    assert report.counts == {"matched": 1}


def test_review_opened_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    event, case = first_shape(
        applications["review"],
        rejected(),
        ReviewCase.Opened,
        drop=(
            "customer_id",
            "requested",
            "refundable",
            "assessment",
            "opened_at",
            "raised_by",
            "evidence",
        ),
        add={"amount": CNY_129},
    )
    assert not hasattr(event, "amount")
    assert case.requested == case.refundable == CNY_129
    assert case.customer_id == "" and case.evidence == []
    assert case.opened_at == event.timestamp
    assert case.excluded == {}  # raised by the platform: nobody is excluded
    assert case.assessment["amount"] == case.assessment["refundable"] == CNY_129
    assert (case.policy_version, case.tier) == ("placeholder-1", "general")
    assert case.needs == {"count": 1, "senior": False, "finance": False}
    assert case.history[0]["rule"] == "auto_approve.limit"
    # Its decision, stored with it, still says what happened.
    assert case.state == "rejected" and case.decision["rule"] == "manual.no_damage"


def test_review_opened_of_e8faf0a(applications: dict[str, ServiceApplication]) -> None:
    _, case = first_shape(
        applications["review"],
        approved(),
        ReviewCase.Opened,
        drop=("raised_by", "evidence"),
    )
    assert case.excluded == {} and case.evidence == [
        {"kind": "photo", "url": "https://cdn.example.com/2.jpg"}  # received later
    ]
    assert case.requested == Money(20000, "CNY") and case.policy_version == "2026-11-01"


def test_review_evidence_requested_of_922aa45(
    applications: dict[str, ServiceApplication],
) -> None:
    made = _case()
    made.request_evidence(
        person="ann",
        roles=REVIEWER,
        missing=["photo"],
        message="send a photo",
        remaining_seconds=3600,
        evidence_due=NOW + timedelta(days=3),
        at=NOW,
    )
    event, case = first_shape(
        applications["review"],
        made,
        ReviewCase.EvidenceRequested,
        drop=("remaining_seconds", "evidence_due"),
    )
    # The shipped policy (Asia/Shanghai, Monday to Friday): asked on Friday 18:00 local,
    # one review stage of business time left (one business day), and three business days
    # (Wednesday 18:00 local) for the customer to answer.
    assert event.remaining_seconds == case.paused_remaining == 24 * 3600
    assert event.evidence_due == case.evidence_due == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert case.state == "awaiting_evidence"
    assert case.due(NOW) is None and case.due(case.evidence_due) == "evidence_overdue"


def test_review_evidence_requested_of_e8faf0a(
    applications: dict[str, ServiceApplication],
) -> None:
    event, _ = first_shape(
        applications["review"],
        approved(),
        ReviewCase.EvidenceRequested,
        drop=("evidence_due",),
    )
    assert event.remaining_seconds == 3600  # what it stored is kept
    assert event.evidence_due == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def test_review_evidence_received_of_922aa45(
    applications: dict[str, ServiceApplication],
) -> None:
    event, case = first_shape(
        applications["review"],
        approved(),
        ReviewCase.EvidenceReceived,
        drop=("records", "answered", "refund_id", "tenant", "order_id"),
        add={"count": 1},
    )
    assert not hasattr(event, "count")
    assert event.records == [] and event.answered is False
    assert (event.refund_id, event.tenant, event.order_id) == (None, None, None)
    assert case.evidence == [{"kind": "photo", "url": "https://cdn.example.com/1.jpg"}]
    assert case.state == "approved"  # the case went on as it did


def test_review_approval_added_of_922aa45(applications: dict[str, ServiceApplication]) -> None:
    _, case = first_shape(
        applications["review"],
        approved(),
        ReviewCase.ApprovalAdded,
        drop=("note", "coupon"),
    )
    (approval,) = case.approvals
    assert (approval["note"], approval["coupon"]) == ("", None)
    assert approval["person"] == "ann" and approval["amount"] == CNY_129


def test_review_approved_by_a_person_of_058f5d7_s_shape(
    applications: dict[str, ServiceApplication],
) -> None:
    _, case = first_shape(
        applications["review"],
        approved(),
        ReviewCase.Approved,
        drop=("approvers", "liability", "coupon"),
    )
    assert case.state == "approved"
    assert case.decision["approvers"] == ["ann"]  # the person who decided approved it
    assert case.decision["liability"] is None and case.decision["coupon"] is None
    assert case.decision["amount"] == CNY_129


def test_review_approved_by_rule_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    made = _case(outcome="approve")
    made.decide_by_rule(NOW)
    event, case = first_shape(
        applications["review"],
        made,
        ReviewCase.Approved,
        drop=("approvers", "liability", "coupon"),
    )
    assert event.decided_by == "system:auto_approve.within_limit"
    assert event.approvers == [] and case.decision["approvers"] == []  # nobody approved


def test_review_rejected_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    _, case = first_shape(
        applications["review"],
        rejected(),
        ReviewCase.Rejected,
        drop=("reason_code",),
    )
    assert case.state == "rejected" and case.decision["reason_code"] == "no_damage"


def test_review_rejected_by_rule_of_058f5d7(applications: dict[str, ServiceApplication]) -> None:
    made = _case(outcome="reject")
    made.decide_by_rule(NOW)
    _, case = first_shape(
        applications["review"],
        made,
        ReviewCase.Rejected,
        drop=("reason_code",),
    )
    assert case.decision["reason_code"] == "window.closed"  # a rule's rejection cites it


def test_review_rejected_of_0_1_0_has_no_internal_note(
    applications: dict[str, ServiceApplication],
) -> None:
    event, case = first_shape(
        applications["review"], rejected(), ReviewCase.Rejected, drop=("internal_note",)
    )
    assert event.internal_note == "" and case.decision["internal_note"] == ""


def test_review_rejected_stored_as_version_2_reads_no_internal_note(
    applications: dict[str, ServiceApplication],
) -> None:
    """Stored between the versioned upcasters (issue 15) and the console's note (issue 17)."""
    app = applications["review"]
    made = rejected()
    assert made.decision["internal_note"] == "same photo as refund rf_1"

    def as_version_2(state: State) -> None:
        del state["internal_note"]

    events = reshaped(app, stored(app, made), ReviewCase.Rejected, as_version_2)
    events = [
        replace(
            e,
            state=app.mapper.transcoder.encode(
                {**app.mapper.transcoder.decode(e.state), "class_version": 2}
            ),
        )
        if e.topic == get_topic(ReviewCase.Rejected)
        else e
        for e in events
    ]
    event, case = loaded(app, events, ReviewCase.Rejected)
    assert event.internal_note == "" and case.decision["internal_note"] == ""
    assert case.decision["reason_code"] == "no_damage"  # version 2's fields as they were


def test_every_versioned_class_has_its_first_shape_tested() -> None:
    """Every stored event class above version 1, in every service, is tested here (or, for
    intake's API keys, in tests/unit/test_api_key_events.py)."""
    versioned = {
        cls for cls in stored_event_classes().values() if getattr(cls, "class_version", 1) > 1
    }
    assert versioned == {cls for _, _, cls in CLASSES} | {ApiKey.Issued, ApiKey.Revoked}
