"""Notify's messages about a return: each return event is a step with JSON-plain facts, and
every step renders on every channel in both locales with what the customer needs to act on
(RMA, address, items, ship-by time), amounts from minor units, and no missing values."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from services.notify.messages.application import step_for
from services.notify.messages.formatting import format_deadline, format_money
from services.notify.messages.returns import return_step
from services.notify.messages.sms import measure
from services.notify.messages.templates import CHANNELS, LOCALES, TEMPLATES, Rendering, render
from shared.contracts import IntegrationEvent
from shared.money import Money
from tests.support import returns as r

REFUND = "rf_6f1b8a523c1e4a7e9d0f2b7c1e5a9d11"
RETURN_STEPS = (
    "return_requested",
    "return_ship_by_approaching",
    "return_delivered",
    "return_received",
    "return_deadline_missed",
    "exchange_ready",
)
# The ship-by instant (17:30 UTC on the 20th) as the customer must read it: the 21st.
SHIP_BY = {
    "zh-CN": "2026年11月21日 01:30（北京时间）",
    "en": "01:30 on 21 November 2026 (China time, UTC+8)",
}
BRAND = {"zh-CN": "【退款通知】", "en": "Refunds: "}


def events() -> dict[str, IntegrationEvent]:
    """One event of each step, as review publishes it."""
    return {
        "return_requested": r.return_requested(REFUND),
        "return_ship_by_approaching": r.ship_by_approaching(REFUND),
        "return_delivered": r.delivered(REFUND),
        "return_received": r.received(REFUND),
        "return_deadline_missed": r.deadline_missed(REFUND, "ship_by"),
        "exchange_ready": r.exchange_ready(REFUND),
    }


def facts_of(event: IntegrationEvent) -> dict[str, Any]:
    due = step_for(event)
    assert due is not None
    _step, facts = due
    # Stored as JSON: what is rendered later is what went through the store.
    stored: dict[str, Any] = json.loads(json.dumps(facts))
    assert stored == facts
    return stored


def text_of(rendering: Rendering) -> str:
    return "\n".join(filter(None, (rendering.subject, rendering.body, rendering.html)))


def assert_complete(rendering: Rendering) -> None:
    """No template syntax, no Python value and no minor units leaked into the text."""
    text = text_of(rendering)
    for leak in ("{{", "}}", "{%", "None", "True", "False", "undefined", "[", "]"):
        assert leak not in text, (rendering.template, leak)
    assert not re.search(r"(?<![\d.,])(25800|23800|2000)(?![\d.,])", text), rendering.template


def test_each_return_event_is_a_step_of_its_own_and_the_shipment_is_none() -> None:
    found = {step: return_step(event) for step, event in events().items()}
    assert {step: due[0] for step, due in found.items() if due} == {s: s for s in RETURN_STEPS}
    # The shipment is what the platform posts for the customer: nothing to tell them.
    assert return_step(r.shipped(REFUND)) is None and step_for(r.shipped(REFUND)) is None
    assert set(RETURN_STEPS) <= {step for step, _, _ in TEMPLATES}


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", CHANNELS)
@pytest.mark.parametrize("step", RETURN_STEPS)
def test_every_return_step_renders_from_its_event_on_every_channel(
    step: str, channel: str, locale: str
) -> None:
    rendering = render(step, locale, facts_of(events()[step]), reference=REFUND, channel=channel)

    assert rendering.locale == locale
    assert rendering.template == f"{step}.{channel}.{locale}@1"
    assert_complete(rendering)
    assert r.RMA in rendering.body  # every message names the return
    if channel == "email":
        assert rendering.html is not None and r.RMA in rendering.html
        assert REFUND in rendering.body and f'lang="{locale}"' in rendering.html
    if channel == "sms":
        assert rendering.body.startswith(BRAND[locale]) and "\n" not in rendering.body
        assert measure(rendering.body).segments == 1  # short: one text each
    if channel != "sms":
        assert rendering.subject and "\n" not in rendering.subject


@pytest.mark.parametrize("locale", LOCALES)
def test_return_instructions_carry_the_rma_address_items_and_ship_by(locale: str) -> None:
    facts = facts_of(r.return_requested(REFUND))
    email = render("return_requested", locale, facts, reference=REFUND)
    in_app = render("return_requested", locale, facts, reference=REFUND, channel="in_app")
    sms = render("return_requested", locale, facts, reference=REFUND, channel="sms")
    address = r.ADDRESS

    for rendering in (email, in_app):
        text = text_of(rendering)
        for part in (address.name, address.phone, *address.lines, address.postcode):
            assert part in text, part
        assert "TSHIRT-L-WHITE × 2" in text and "SOCKS-M × 1" in text
        assert SHIP_BY[locale] in text
        # What happens next: the refund of the approved amount, less any deduction.
        assert ("¥258.00" if locale == "zh-CN" else "CNY 258.00") in text
        assert ("运单号" if locale == "zh-CN" else "tracking number") in text
        assert ("不予退款" if locale == "zh-CN" else "nothing is refunded") in text
    assert email.html is not None and "退货仓 收货组 +86 21 5555 0100<br>" in email.html
    assert SHIP_BY[locale] in sms.body and r.RMA in sms.body


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", ["email", "in_app"])  # the SMS says only what to do
def test_an_exchange_return_promises_the_replacement_not_money(channel: str, locale: str) -> None:
    facts = facts_of(r.return_requested(REFUND, desired_outcome="exchange"))
    text = text_of(render("return_requested", locale, facts, reference=REFUND, channel=channel))

    assert ("换货" if locale == "zh-CN" else "replacement") in text
    assert "258.00" not in text and ("不予退款" not in text and "nothing is refunded" not in text)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_the_reminder_repeats_the_rma_and_ship_by(channel: str, locale: str) -> None:
    facts = facts_of(r.ship_by_approaching(REFUND))
    rendering = render("return_ship_by_approaching", locale, facts, reference="r", channel=channel)

    assert r.RMA in rendering.body and SHIP_BY[locale] in text_of(rendering)


# The deduction's reason: the item's explanation in the customer's locale; the English one
# for a locale it lacks; the rule id when it gives none.
DEDUCTIONS = [
    ({"zh-CN": "吊牌已剪", "en": "The tags were removed"}, {"zh-CN": "吊牌已剪", "en": "The tags"}),
    ({"en": "The tags were removed"}, {"zh-CN": "The tags were removed", "en": "The tags"}),
    ({}, {"zh-CN": "return.inspection.tags", "en": "return.inspection.tags"}),
]


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("explanation", "reason"), DEDUCTIONS)
def test_a_deduction_is_stated_with_its_reason_and_what_is_refunded(
    explanation: dict[str, str], reason: dict[str, str], locale: str
) -> None:
    lines = [
        r.line("TSHIRT-L-WHITE", 2, 2, 2050, "return.inspection.tags", explanation),
        r.line("SOCKS-M", 1, 1),
    ]
    facts = facts_of(r.received(REFUND, lines=lines, amount=23750))
    money = {"zh-CN": ("¥20.50", "¥237.50"), "en": ("CNY 20.50", "CNY 237.50")}[locale]

    for channel in CHANNELS:
        rendering = render("return_received", locale, facts, reference="r", channel=channel)
        text = text_of(rendering)
        assert all(amount in text for amount in money), (channel, text)
        assert "2050" not in text and "23750" not in text
        if channel != "sms":  # the SMS points to the app for why
            assert reason[locale] in text and "TSHIRT-L-WHITE" in text
            assert "SOCKS-M" not in text  # nothing was taken off the socks


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_a_receipt_without_deduction_says_only_what_is_refunded(channel: str, locale: str) -> None:
    lines = [r.line("TSHIRT-L-WHITE", 2, 2), r.line("SOCKS-M", 1, 1)]
    facts = facts_of(r.received(REFUND, lines=lines, amount=25800))
    text = text_of(render("return_received", locale, facts, reference="r", channel=channel))

    assert ("¥258.00" if locale == "zh-CN" else "CNY 258.00") in text
    assert ("扣除" not in text) if locale == "zh-CN" else ("deduct" not in text.lower())


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_a_receipt_for_a_reviewer_says_a_specialist_is_checking(channel: str, locale: str) -> None:
    lines = [r.line("TSHIRT-L-WHITE", 2, 1, 0, "return.inspection.wrong_item")]
    facts = facts_of(r.received(REFUND, outcome="reviewer", lines=lines, amount=0))
    rendering = render("return_received", locale, facts, reference="r", channel=channel)
    text = text_of(rendering)

    assert ("专员" if locale == "zh-CN" else "specialist") in text
    assert "0.00" not in text  # no amount is promised while a person decides
    if channel != "sms":  # a unit missing: said, and not refunded
        assert ("收到 1 件" if locale == "zh-CN" else "1 of 2 received") in text


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_a_missed_deadline_closes_or_accepts_the_return(channel: str, locale: str) -> None:
    closed = text_of(
        render(
            "return_deadline_missed",
            locale,
            facts_of(r.deadline_missed(REFUND, "ship_by")),
            reference="r",
            channel=channel,
        )
    )
    accepted = text_of(
        render(
            "return_deadline_missed",
            locale,
            facts_of(r.deadline_missed(REFUND, "receipt_by")),
            reference="r",
            channel=channel,
        )
    )

    nothing = "不予退款" if locale == "zh-CN" else "nothing will be refunded"
    on_its_way = "退款正在处理中" if locale == "zh-CN" else "refund is on its way"
    assert nothing in closed and on_its_way not in closed
    assert on_its_way in accepted and nothing not in accepted
    assert ("关闭" if locale == "zh-CN" else "closed") in closed
    assert ("受理" if locale == "zh-CN" else "accepted") in accepted


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("channel", CHANNELS)
def test_the_exchange_is_announced_with_a_difference_only_when_there_is_one(
    channel: str, locale: str
) -> None:
    def text(facts: dict[str, Any]) -> str:
        return text_of(render("exchange_ready", locale, facts, reference="r", channel=channel))

    plain = text(facts_of(r.exchange_ready(REFUND)))
    with_difference = text(facts_of(r.exchange_ready(REFUND, difference=1500)))

    assert ("换货" if locale == "zh-CN" else "replacement") in plain
    assert "15.00" not in plain
    assert ("¥15.00" if locale == "zh-CN" else "CNY 15.00") in with_difference


@pytest.mark.parametrize("locale", LOCALES)
def test_arrival_at_the_warehouse_names_the_carrier_in_the_customers_language(
    locale: str,
) -> None:
    facts = facts_of(r.delivered(REFUND))
    email = render("return_delivered", locale, facts, reference="r")

    assert ("顺丰速运" if locale == "zh-CN" else "SF Express") in email.body
    assert "SF1234567890123" in email.body
    # Receipt by 09:00 UTC on the 9th: 17:00 in Shanghai.
    assert ("2026年11月9日 17:00" if locale == "zh-CN" else "17:00 on 9 November 2026") in (
        email.body
    )


@pytest.mark.parametrize(
    ("iso", "zh", "en"),
    [
        ("2026-11-20T15:59:00+00:00", "2026年11月20日 23:59", "23:59 on 20 November 2026"),
        ("2026-11-20T23:59:00+08:00", "2026年11月20日 23:59", "23:59 on 20 November 2026"),
        ("2026-12-31T16:00:00-00:00", "2027年1月1日 00:00", "00:00 on 1 January 2027"),
        ("2026-07-01T08:05:00-05:00", "2026年7月1日 21:05", "21:05 on 1 July 2026"),
    ],
)
def test_a_deadline_is_written_as_a_time_of_day_in_beijing_time(iso: str, zh: str, en: str) -> None:
    assert format_deadline(iso, "zh-CN") == f"{zh}（北京时间）"
    assert format_deadline(iso, "en") == f"{en} (China time, UTC+8)"
    assert format_deadline(iso, "en-GB") == f"{en} (China time, UTC+8)"


@pytest.mark.parametrize(
    ("minor", "currency", "zh", "en"),
    [
        (1, "CNY", "¥0.01", "CNY 0.01"),
        (123456789, "CNY", "¥1,234,567.89", "CNY 1,234,567.89"),
        (1500, "JPY", "JP¥1,500", "JPY 1,500"),
        (1005, "KWD", "KWD 1.005", "KWD 1.005"),
        (999999999999999, "USD", "US$9,999,999,999,999.99", "USD 9,999,999,999,999.99"),
    ],
)
def test_amounts_come_exactly_from_minor_units(minor: int, currency: str, zh: str, en: str) -> None:
    money = Money(minor, currency)
    assert format_money(money, "zh-CN") == zh and format_money(money, "en") == en
    lines = [r.line("TSHIRT-L-WHITE", 1, 1)]
    facts = {
        **facts_of(r.received(REFUND, lines=lines)),
        "amount": {"amount": minor, "currency": currency},
    }
    assert zh in render("return_received", "zh-CN", facts, reference="r", channel="sms").body
    assert en in render("return_received", "en", facts, reference="r", channel="sms").body


def test_a_return_step_missing_a_fact_is_a_key_error_naming_the_template() -> None:
    facts = facts_of(r.return_requested(REFUND))
    del facts["address"]
    with pytest.raises(KeyError, match=r"return_requested\.email\.en\.j2"):
        render("return_requested", "en", facts, reference="r")
    without_rma = {**facts_of(r.ship_by_approaching(REFUND)), "rma": None}
    with pytest.raises(KeyError, match="rma"):
        render("return_ship_by_approaching", "zh-CN", without_rma, reference="r", channel="sms")
