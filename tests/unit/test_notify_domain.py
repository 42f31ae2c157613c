"""Unit tests of notify's domain and templates: pure, in memory, no framework."""

from __future__ import annotations

import ast
from copy import deepcopy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.notify.messages.domain import Correspondence, UnknownStep
from services.notify.messages.steps import (
    mask_email,
    message_id,
    notification_id,
    occurrence_key,
    occurrence_of,
    step_of,
)
from services.notify.messages.templates import format_money, render
from shared.money import Money

REFUND = "rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"
CNY_129 = {"amount": 12900, "currency": "CNY"}
AT = datetime(2026, 11, 4, tzinfo=UTC)
REJECTION = {
    "order_id": "ORD-1001",
    "rule": "R-RETURN-WINDOW-30D",
    "policy_version": "2026.1",
    "explanation": {"zh-CN": "已超过30天退货期限", "en": "The 30-day return window has passed"},
}


def opened() -> Correspondence:
    correspondence = Correspondence(refund_id=REFUND, tenant="acme")
    assert correspondence.id == Correspondence.create_id(REFUND)
    return correspondence


def event_names(correspondence: Correspondence) -> list[str]:
    return [type(e).__name__ for e in correspondence.collect_events()]


def sent(correspondence: Correspondence, step: str, channel: str = "email") -> None:
    correspondence.record_sent(
        step=step,
        channel=channel,
        message_id=message_id(REFUND, step, channel),
        recipient_masked="l***@example.com",
        locale="en",
        template=f"{step}.{channel}.en@1",
        sent_at=AT,
    )


def reachable(**contact: str | None) -> Correspondence:
    correspondence = opened()
    correspondence.record_contact(
        email=contact.get("email", "li.wei@example.com"),
        phone=contact.get("phone"),
        locale="en",
        customer_id=contact.get("customer_id", "C-42"),
    )
    return correspondence


def due(correspondence: Correspondence, channel: str = "email") -> list[str]:
    return [d.step for d in correspondence.pending(channels=(channel,))]


def test_scheduling_a_step_twice_stores_one_event() -> None:
    correspondence = opened()
    correspondence.schedule("approved", {"amount": CNY_129}, causation_id="ev-1")
    correspondence.schedule("approved", {"amount": CNY_129}, causation_id="ev-2")

    assert event_names(correspondence) == ["Opened", "StepScheduled"]
    assert correspondence.scheduled["approved"].causation_id == "ev-1"


def test_a_step_the_refund_goes_through_again_is_a_message_of_its_own_once() -> None:
    correspondence = reachable()
    correspondence.collect_events()
    first = correspondence.schedule("rejected", REJECTION, causation_id="ev-1")
    appealed = correspondence.schedule("in_review", {"why": "appeal"}, causation_id="ev-2")
    second = correspondence.schedule("rejected", REJECTION, causation_id="ev-3")
    # The same upstream facts again (redelivered, re-published) change nothing.
    again = [
        correspondence.schedule("rejected", REJECTION, causation_id=cause)
        for cause in ("ev-1", "ev-3")
    ]

    assert (first, appealed, second, again) == ("rejected", "in_review", "rejected#2", [None] * 2)
    assert event_names(correspondence) == ["StepScheduled"] * 3
    assert due(correspondence) == ["rejected", "in_review", "rejected#2"]
    assert [s.causation_id for s in correspondence.occurrences("rejected")] == ["ev-1", "ev-3"]
    # Each occurrence is sent, and its ids derived, apart; the first keeps the plain step's.
    assert notification_id(REFUND, "rejected#2", "email") != notification_id(
        REFUND, "rejected", "email"
    )
    sent(correspondence, "rejected")
    assert due(correspondence) == ["in_review", "rejected#2"]


def test_a_step_that_happens_once_keeps_its_first_occurrence_whatever_comes_after() -> None:
    correspondence = reachable()
    assert correspondence.schedule("approved", {"amount": CNY_129}, causation_id="ev-1")
    assert correspondence.schedule("approved", {"amount": CNY_129}, causation_id="ev-9") is None
    assert correspondence.schedule("paid", {"amount": CNY_129}, causation_id="ev-2")
    assert correspondence.schedule("paid", {"amount": CNY_129}, causation_id="ev-8") is None
    assert due(correspondence) == ["approved", "paid"]


@pytest.mark.parametrize(
    ("step", "occurrence", "key"),
    [("rejected", 1, "rejected"), ("rejected", 2, "rejected#2"), ("in_review", 12, "in_review#12")],
)
def test_occurrence_keys_name_the_step_and_its_number(step: str, occurrence: int, key: str) -> None:
    assert occurrence_key(step, occurrence) == key
    assert (step_of(key), occurrence_of(key)) == (step, occurrence)


def test_recording_the_same_contact_again_stores_nothing() -> None:
    correspondence = opened()
    for _ in range(2):
        correspondence.record_contact(email="li.wei@example.com", phone=None, locale="zh-CN")

    assert event_names(correspondence) == ["Opened", "ContactRecorded"]


def test_a_step_scheduled_before_the_contact_is_pending_once_the_contact_arrives() -> None:
    correspondence = opened()
    correspondence.schedule("approved", {"amount": CNY_129}, causation_id="ev-1")
    assert correspondence.pending() == []

    correspondence.record_contact(email="li.wei@example.com", phone=None, locale="en")

    assert due(correspondence) == ["approved"]


def test_channels_follow_the_contact_details() -> None:
    both = reachable(phone="+8613800000000")
    email_only = reachable()
    phone_only = reachable(email=None, phone="+8613800000000", customer_id=None)
    for correspondence in (both, email_only, phone_only):
        correspondence.schedule("received", {"amount": CNY_129}, causation_id="ev-1")

    assert {(d.step, d.channel) for d in both.pending()} == {
        ("received", "email"),
        ("received", "sms"),
        ("received", "in_app"),
    }
    assert {d.channel for d in email_only.pending()} == {"email", "in_app"}
    assert {d.channel for d in phone_only.pending()} == {"sms"}  # no customer id: no feed


def test_sent_steps_are_no_longer_pending_and_are_recorded_once() -> None:
    correspondence = reachable()
    correspondence.schedule("received", {"amount": CNY_129}, causation_id="ev-1")
    correspondence.schedule("approved", {"amount": CNY_129}, causation_id="ev-2")
    correspondence.collect_events()

    sent(correspondence, "received")
    sent(correspondence, "received")

    assert event_names(correspondence) == ["MessageSent"]
    assert due(correspondence) == ["approved"]
    assert correspondence.is_sent("received", "email")
    assert due(correspondence, "in_app") == ["received", "approved"]  # channels are apart


def test_an_attempt_is_claimed_once_and_failures_are_retried_then_given_up() -> None:
    correspondence = reachable()
    correspondence.schedule("paid", {"amount": CNY_129}, causation_id="ev-1")
    correspondence.collect_events()

    assert correspondence.start_attempt("paid", "email") == 1
    assert correspondence.start_attempt("paid", "email") is None  # in flight: no second claim
    correspondence.record_attempt_failed(
        step="paid", channel="email", error="421 busy", retry_at=AT
    )
    (waiting,) = correspondence.pending(channels=("email",))
    assert waiting.attempts == 1 and waiting.retry_at == AT
    assert correspondence.start_attempt("paid", "email") == 2
    correspondence.record_failed(step="paid", channel="email", cause="gave up", failed_at=AT)
    correspondence.record_failed(step="paid", channel="email", cause="again", failed_at=AT)

    assert event_names(correspondence) == [
        "AttemptStarted",
        "AttemptFailed",
        "AttemptStarted",
        "MessageFailed",
    ]
    delivery = correspondence.delivery("paid", "email")
    assert delivery.status == "failed" and delivery.attempts == 2
    assert delivery.last_error == "gave up"
    assert due(correspondence) == []
    assert correspondence.start_attempt("paid", "email") is None


def test_a_claimer_recognises_its_own_claim_and_no_one_else_gets_it() -> None:
    correspondence = reachable()
    correspondence.schedule("paid", {"amount": CNY_129}, causation_id="ev-1")
    correspondence.collect_events()

    assert correspondence.start_attempt("paid", "email", "token-a") == 1
    # Asked again with its token (its answer was lost): the same attempt, nothing stored.
    assert correspondence.start_attempt("paid", "email", "token-a") == 1
    assert len(correspondence.collect_events()) == 1
    assert correspondence.start_attempt("paid", "email", "token-b") is None
    assert correspondence.start_attempt("paid", "email") is None


def test_a_claim_without_outcome_becomes_uncertain_until_a_person_resends_it() -> None:
    correspondence = reachable()
    correspondence.schedule("paid", {"amount": CNY_129}, causation_id="ev-1")
    correspondence.start_attempt("paid", "email")
    correspondence.collect_events()

    correspondence.mark_uncertain("paid", "email")
    correspondence.mark_uncertain("paid", "email")
    assert due(correspondence) == []
    assert correspondence.request_resend("paid", "email", actor="staff:ann") is True
    assert correspondence.request_resend("paid", "email", actor="staff:ann") is False

    assert event_names(correspondence) == ["MarkedUncertain", "ResendRequested"]
    assert due(correspondence) == ["paid"]
    assert correspondence.delivery("paid", "email").attempts == 0


def test_a_sent_message_cannot_be_failed_resent_or_made_uncertain() -> None:
    correspondence = reachable()
    correspondence.schedule("paid", {"amount": CNY_129}, causation_id="ev-1")
    sent(correspondence, "paid")
    correspondence.collect_events()

    correspondence.record_failed(step="paid", channel="email", cause="late", failed_at=AT)
    correspondence.mark_uncertain("paid", "email")
    assert correspondence.request_resend("paid", "email", actor="staff:ann") is False

    assert event_names(correspondence) == []
    assert correspondence.delivery("paid", "email").status == "sent"


def test_unknown_steps_are_refused() -> None:
    correspondence = opened()
    with pytest.raises(UnknownStep):
        correspondence.schedule("shipped", {}, causation_id="ev-1")
    with pytest.raises(UnknownStep):
        sent(correspondence, "received")  # never scheduled


def test_ids_are_deterministic_and_addresses_masked() -> None:
    assert notification_id(REFUND, "paid", "email") == notification_id(REFUND, "paid", "email")
    assert notification_id(REFUND, "paid", "email") != notification_id(REFUND, "rejected", "email")
    assert message_id(REFUND, "paid", "email") == (
        f"<{notification_id(REFUND, 'paid', 'email')}@refunds.local>"
    )
    assert notification_id(REFUND, "paid", "email").startswith("nt_")
    assert mask_email("li.wei@example.com") == "l***@example.com"
    assert mask_email("not-an-address") == "***"


def test_the_domain_imports_no_framework() -> None:
    source = Path(__file__).parents[2] / "services" / "notify" / "messages" / "domain.py"
    tree = ast.parse(source.read_text())
    imported = {
        name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for name in (
            [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        )
    }
    assert imported.isdisjoint({"fastapi", "aiokafka", "httpx", "psycopg", "pydantic"})


@pytest.mark.parametrize(
    ("money", "locale", "expected"),
    [
        (Money(12900, "CNY"), "zh-CN", "¥129.00"),
        (Money(12900, "CNY"), "en", "CNY 129.00"),
        (Money(1290, "JPY"), "zh-CN", "JP¥1,290"),
        (Money(1290, "JPY"), "en", "JPY 1,290"),
        (Money(1234567, "CNY"), "zh-CN", "¥12,345.67"),
        (Money(1500, "KWD"), "en", "KWD 1.500"),
        (Money(990, "SGD"), "zh-CN", "SGD 9.90"),
        (Money(12900, "CNY"), "fr", "CNY 129.00"),
    ],
)
def test_amounts_follow_the_locale_and_the_currency_exponent(
    money: Money, locale: str, expected: str
) -> None:
    assert format_money(money, locale) == expected


def test_approved_in_both_locales() -> None:
    facts = {"amount": CNY_129, "order_id": "ORD-1001", "method": "alipay"}
    zh = render("approved", "zh-CN", facts, reference=REFUND)
    en = render("approved", "en", facts, reference=REFUND)

    assert zh.subject == "您的退款 ¥129.00 已审核通过"
    assert "¥129.00" in zh.body and "支付宝" in zh.body and REFUND in zh.body
    assert zh.template == "approved.email.zh-CN@1"
    assert en.subject == "Your refund of CNY 129.00 has been approved"
    assert "Alipay" in en.body and "ORD-1001" in en.body
    assert en.template == "approved.email.en@1"


def test_paid_states_amount_route_and_arrival() -> None:
    facts = {
        "amount": {"amount": 1290, "currency": "JPY"},
        "method": "wechat_pay",
        "paid_at": "2026-11-04T09:00:00+00:00",
        "expected_arrival": "2026-11-05T09:00:00+00:00",
    }
    zh = render("paid", "zh-CN", facts, reference=REFUND)
    en = render("paid", "en", facts, reference=REFUND)

    assert zh.subject == "您的退款 JP¥1,290 已原路退回"
    assert "微信支付" in zh.body and "2026年11月5日" in zh.body
    assert en.subject == "Your refund of JPY 1,290 has been paid"
    assert "WeChat Pay" in en.body and "5 November 2026" in en.body


def test_rejected_states_rule_explanation_and_how_to_appeal() -> None:
    zh = render("rejected", "zh-CN", REJECTION, reference=REFUND)
    en = render("rejected", "en", REJECTION, reference=REFUND)

    assert "已超过30天退货期限" in zh.body and "R-RETURN-WINDOW-30D" in zh.body
    assert "申诉" in zh.body and "30-day" not in zh.body
    assert "The 30-day return window has passed" in en.body and "R-RETURN-WINDOW-30D" in en.body
    assert "How to appeal" in en.body


def test_unknown_locales_fall_back_to_english() -> None:
    rendering = render("received", "fr", {"amount": CNY_129, "order_id": "O-1"}, reference=REFUND)

    assert rendering.locale == "en"
    assert rendering.template == "received.email.en@1"
    assert rendering.subject == "We received your refund request for order O-1"


def state(correspondence: Correspondence) -> dict[str, object]:
    """Everything a decision reads, as plain values."""
    return {
        "version": correspondence.version,
        "contact": correspondence.contact,
        "scheduled": dict(correspondence.scheduled),
        "deliveries": {k: vars(d).copy() for k, d in correspondence.deliveries.items()},
    }


def test_a_copy_to_decide_on_is_equal_and_changing_it_leaves_the_original_as_it_was() -> None:
    original = reachable(phone="+8613800000000")
    original.schedule("received", {"amount": CNY_129, "order_id": "ORD-1"}, causation_id="e-1")
    original.schedule("approved", {"amount": CNY_129, "order_id": "ORD-1"}, causation_id="e-2")
    assert original.start_attempt("received", "email", claim="c-1") == 1
    sent(original, "received")
    original.collect_events()  # saved: nothing pending, as a cached correspondence is
    before = state(original)

    copied = deepcopy(original)
    assert state(copied) == before
    # Decided on the copy: claims, outcomes, failures, a new step.
    assert copied.start_attempt("approved", "email", claim="c-2") == 1
    sent(copied, "approved")
    assert copied.start_attempt("received", "sms", claim="c-3") == 1
    copied.record_failed(step="received", channel="sms", cause="refused", failed_at=AT)
    copied.schedule("paid", {"amount": CNY_129, "method": "alipay"}, causation_id="e-3")
    assert event_names(copied)  # the copy has its own pending events ...
    assert state(original) == before  # ... and the original is as it was
    assert original.collect_events() == []
    assert state(copied) != before
