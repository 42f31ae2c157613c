"""SLA timers driven by a controllable clock on a real store: reminder, breach and escalation,
a pause while evidence is awaited, and survival across a restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.review.application import ReviewApplication
from services.review.policy_document import default_policy
from services.review.publishing import to_integration
from services.review.sla import RunningClocks, tick_due
from shared.contracts import (
    CustomerContact,
    EvidenceRecord,
    MoneyModel,
    OrderLine,
    PaymentRoute,
    RefundedItem,
    RefundEvidenceAddedV1,
    RefundRequestedV1,
    envelope,
)

# Thursday 2026-11-19 10:00 in Shanghai: one business day later is Friday 10:00.
THURSDAY = datetime(2026, 11, 19, 2, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> dict[str, str]:
    return {
        "PERSISTENCE_MODULE": "eventsourcing.sqlite",
        "SQLITE_DBNAME": str(tmp_path / "review.sqlite"),
        "SINGLE_ROW_TRACKING": "n",
    }


@pytest.fixture
def clock() -> Clock:
    return Clock(THURSDAY)


@pytest.fixture
def review(store: dict[str, str], clock: Clock) -> Iterator[ReviewApplication]:
    app = ReviewApplication(default_policy(), env=store, clock=clock)
    yield app
    app.close()


positions = iter(range(1, 10_000))


def deliver(app: ReviewApplication, event: RefundRequestedV1 | RefundEvidenceAddedV1) -> None:
    message = envelope(
        event,
        source="intake",
        event_id=str(uuid.uuid4()),
        position=next(positions),
        time=THURSDAY,
        causation_id=None,
    )
    assert app.handle(message)


def over_limit_request(refund_id: str) -> RefundRequestedV1:
    price = MoneyModel(amount=80000, currency="CNY")  # above 500.00: a person decides
    return RefundRequestedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id="ORD-1",
        customer_id=f"C-{uuid.uuid4().hex[:6]}",
        amount=price,
        paid=price,
        payment=PaymentRoute(method="alipay", reference="r"),
        items=[RefundedItem(sku="LAMP", quantity=1)],
        reason="damaged",
        desired_outcome="full_refund",
        channel="app",
        customer=CustomerContact(email="a@example.com"),
        requested_at=THURSDAY,
        paid_at=THURSDAY - timedelta(days=4),
        delivered_at=THURSDAY - timedelta(days=2),
        order_lines=[OrderLine(sku="LAMP", category="home", quantity=1, unit_price=price)],
        evidence=[EvidenceRecord(kind="photo", url="https://cdn.example.com/l.jpg")],
    )


def published(app: ReviewApplication) -> list[str]:
    notifications = app.recorder.select_notifications(start=1, limit=1000)
    types = [to_integration(app.mapper.to_domain_event(n)) for n in notifications]
    return [t.TYPE for t in types if t is not None]


def clocks_of(app: ReviewApplication) -> RunningClocks:
    """The worker's clocks for this app, kept between ticks as the worker keeps them."""
    if not hasattr(app, "_test_clocks"):
        app._test_clocks = RunningClocks(app)  # type: ignore[attr-defined]
    found: RunningClocks = app._test_clocks  # type: ignore[attr-defined]
    return found


def tick(app: ReviewApplication, clock: Clock, at: datetime) -> int:
    """One turn of the SLA worker at `at`: only the cases whose clocks can be due are loaded."""
    clock.now = at
    return tick_due(app, clocks_of(app))


def test_reminder_then_breach_escalates(review: ReviewApplication, clock: Clock) -> None:
    deliver(review, over_limit_request("rf_sla1"))
    case = review.case_for("rf_sla1")
    assert case is not None and case.deadline == THURSDAY + timedelta(days=1)
    assert tick(review, clock, THURSDAY + timedelta(hours=3)) == 0
    assert tick(review, clock, THURSDAY + timedelta(hours=21)) == 1  # 3 h before: remind
    assert review.case_for("rf_sla1").reminded  # type: ignore[union-attr]
    assert tick(review, clock, THURSDAY + timedelta(hours=22)) == 0  # reminded once
    assert tick(review, clock, THURSDAY + timedelta(days=1, minutes=1)) == 1
    breached = review.case_for("rf_sla1")
    assert breached is not None and breached.breaches == 1 and breached.tier == "important"
    # The escalated stage gets a new deadline: Friday + 1 business day = Monday.
    assert breached.deadline is not None and breached.deadline.weekday() == 0
    assert published(review)[-2:] == ["review.sla_breached.v1", "review.escalated.v1"]


def test_the_clock_pauses_while_evidence_is_awaited(
    review: ReviewApplication, clock: Clock
) -> None:
    deliver(review, over_limit_request("rf_sla2"))
    clock.now = THURSDAY + timedelta(hours=6)  # 18 business hours left

    def ask(case: object) -> None:
        case.request_evidence(  # type: ignore[attr-defined]
            person="ann",
            roles=frozenset({"reviewer"}),
            missing=["photo of the box"],
            message="Please send a photo of the box.",
            remaining_seconds=review.remaining_seconds(case, clock.now),  # type: ignore[arg-type]
            evidence_due=review.evidence_due(clock.now),
            at=clock.now,
        )

    review.act("rf_sla2", ask)
    # 3 business days for the customer: Thursday 16:00 → Tuesday 16:00 (Shanghai).
    assert tick(review, clock, THURSDAY + timedelta(days=4, hours=5)) == 0  # paused: no breach
    resumed_at = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Shanghai
    clock.now = resumed_at
    deliver(
        review,
        RefundEvidenceAddedV1(
            refund_id="rf_sla2",
            tenant="acme",
            order_id="ORD-1",
            evidence=[EvidenceRecord(kind="photo", url="https://cdn.example.com/box.jpg")],
            note="",
            actor="tenant:acme",
            added_at=resumed_at,
        ),
    )
    case = review.case_for("rf_sla2")
    assert case is not None and case.state == "pending"
    assert case.deadline == resumed_at + timedelta(hours=18)  # the 18 hours that were left


def test_timers_survive_a_restart(store: dict[str, str], clock: Clock) -> None:
    first = ReviewApplication(default_policy(), env=store, clock=clock)
    deliver(first, over_limit_request("rf_sla3"))
    first.close()
    # A new process: the running clocks are read back from the log, then acted on.
    restarted = ReviewApplication(default_policy(), env=store, clock=clock)
    try:
        assert tick(restarted, clock, THURSDAY + timedelta(days=2)) == 1
        case = restarted.case_for("rf_sla3")
        assert case is not None and case.breaches == 1
    finally:
        restarted.close()


def test_unanswered_evidence_request_goes_back_to_the_reviewer(
    review: ReviewApplication, clock: Clock
) -> None:
    deliver(review, over_limit_request("rf_sla4"))
    clock.now = THURSDAY + timedelta(hours=6)

    def ask(case: object) -> None:
        case.request_evidence(  # type: ignore[attr-defined]
            person="ann",
            roles=frozenset({"reviewer"}),
            missing=["photo"],
            message="Please send a photo.",
            remaining_seconds=review.remaining_seconds(case, clock.now),  # type: ignore[arg-type]
            evidence_due=review.evidence_due(clock.now),
            at=clock.now,
        )

    review.act("rf_sla4", ask)
    tuesday_late = THURSDAY + timedelta(days=5, hours=6, minutes=1)  # Tue 16:01 Shanghai
    assert tick(review, clock, tuesday_late) == 1
    case = review.case_for("rf_sla4")
    assert case is not None and case.state == "pending"
    assert case.history[-1]["action"] == "evidence_overdue"
    # The review clock resumes with the 18 business hours that were left.
    assert case.deadline == tuesday_late + timedelta(hours=18)


def test_a_case_is_loaded_again_only_when_its_clock_can_be_due_or_it_changed(
    review: ReviewApplication, clock: Clock
) -> None:
    """With 10,000 open cases, loading each every 5 s kept review busy: a case not due is
    looked at again at its reminder, its deadline, or after its next event."""
    deliver(review, over_limit_request("rf_sla5"))
    deliver(review, over_limit_request("rf_sla6"))
    clocks = clocks_of(review)
    first, second = (review.case_for(r).id for r in ("rf_sla5", "rf_sla6"))  # type: ignore[union-attr]
    assert clocks.due(THURSDAY) == sorted([first, second])  # new: looked at once
    assert tick(review, clock, THURSDAY + timedelta(hours=3)) == 0
    remind_at = review.case_for("rf_sla5").remind_at  # type: ignore[union-attr]
    assert remind_at is not None and THURSDAY + timedelta(hours=4) < remind_at
    assert clocks.wakes[first] == remind_at
    assert clocks.due(THURSDAY + timedelta(hours=4)) == []  # nothing reloaded meanwhile
    clock.now = THURSDAY + timedelta(hours=4)
    review.act("rf_sla6", lambda case: case.claim("ann", clock.now))
    assert clocks.due(THURSDAY + timedelta(hours=4)) == [second]  # it changed: look again
    assert tick(review, clock, THURSDAY + timedelta(hours=4)) == 0
    assert clocks.due(remind_at - timedelta(minutes=1)) == []
    assert clocks.due(remind_at) == sorted([first, second])
    assert tick(review, clock, THURSDAY + timedelta(hours=21)) == 2  # both reminded
    assert tick(review, clock, THURSDAY + timedelta(hours=22)) == 0
    assert clocks.wakes[first] == THURSDAY + timedelta(days=1)  # reminded: now the deadline
    assert tick(review, clock, THURSDAY + timedelta(days=1, minutes=1)) == 2  # both breached
