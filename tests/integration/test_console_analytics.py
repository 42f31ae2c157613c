"""The analytics page: intake's refund analytics over the chosen days, as tables and as
accessible server-drawn SVG charts (title, description, classes, no inline style); finance,
auditors and admins only; a day it cannot read is named; both languages render."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from shared.contracts import MoneyModel, PaymentRoute, ReviewApprovedV1, envelope
from tests.support.console_stack import Stack, console_stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with console_stack(tmp_path) as made:
        yield made


def test_figures_and_charts_for_the_chosen_days(stack: Stack) -> None:
    for amount in (12900, 5000, 700):
        stack.refund(amount)
    zhao = stack.browser("zhao", "/analytics")
    page = zhao.get("/analytics")
    assert page.status_code == 200, page.text
    text = page.text
    assert '<dd class="refunds-count">3</dd>' in text
    assert "¥186.00" in text  # 129.00 + 50.00 + 7.00 requested, exactly
    charts = re.findall(r"<svg class=\"chart\" role=\"img\" aria-labelledby=\"([a-z]+)-title", text)
    assert charts == ["reasons", "outcomes", "stages", "inspections"]
    start = text.index('id="reasons-title"')
    reasons = text[start : text.index("</svg>", start)]
    assert "<title" in text and '<desc id="reasons-desc">' in text
    assert '<rect class="chart-bar"' in reasons and "商品损坏" in reasons and ">3<" in reasons
    assert "style=" not in text and "<script>" not in text
    table = text[text.index('<caption id="by-reason">') :]
    assert '<th scope="row">商品损坏</th><td>3</td>' in table  # the same numbers, as a table

    rated = zhao.get("/analytics", params={"orders_placed": "30"}).text
    assert "10.0%" in rated  # 3 orders with refunds of 30 placed

    past = (date.today() - timedelta(days=40)).isoformat()
    earlier = (date.today() - timedelta(days=35)).isoformat()
    empty = zhao.get("/analytics", params={"start": past, "end": earlier}).text
    assert '<dd class="refunds-count">0</dd>' in empty


def test_days_it_cannot_read_are_named(stack: Stack) -> None:
    zhao = stack.browser("zhao", "/analytics")
    wrong = zhao.get("/analytics", params={"start": "yesterday"})
    assert wrong.status_code == 422 and "<code>start</code>" in wrong.text
    backwards = zhao.get("/analytics", params={"start": "2026-11-10", "end": "2026-11-01"})
    assert backwards.status_code == 422 and "<code>end</code>" in backwards.text
    assert 'value="2026-11-10"' in backwards.text  # the form keeps what was typed


def test_finance_auditors_and_admins_only(stack: Stack) -> None:
    for username in ("audrey", "root"):
        assert stack.browser(username, "/analytics").get("/analytics").status_code == 200
    for username in ("ann", "wu"):
        other = stack.browser(username, "/analytics")
        assert other.get("/analytics").status_code == 403
        assert 'href="/analytics"' not in other.get("/").text


def test_the_analytics_page_speaks_both_languages(stack: Stack) -> None:
    stack.refund()
    zhao = stack.browser("zhao", "/analytics")
    zh = zhao.get("/analytics").text
    assert '<html lang="zh-CN">' in zh and "按原因统计的退款" in zh
    csrf = zh.split('name="csrf_token" value="')[1].split('"')[0]
    en = zhao.post("/language", data={"csrf_token": csrf, "locale": "en", "next": "/analytics"})
    assert '<html lang="en">' in en.text and "Refunds by reason" in en.text
    assert "CN¥129.00" in en.text


def test_a_state_and_an_amount_sharing_an_english_word_read_apart_in_zh_cn(stack: Stack) -> None:
    refund = stack.refund(12900)
    approved = ReviewApprovedV1(
        refund_id=refund["id"],
        tenant="acme",
        order_id=refund["order_id"],
        amount=MoneyModel(amount=12900, currency="CNY"),
        payment=PaymentRoute(method="alipay", reference="2026110122001"),
        policy_version="test-1",
        rule="auto_approve.within_limit",
        decided_by="wang",
        decided_at=datetime.now(UTC),
    )
    message = envelope(
        approved,
        source="review",
        event_id=str(uuid.uuid4()),
        position=1,
        time=datetime.now(UTC),
        causation_id=None,
    )
    assert stack.services["intake"].http.state.intake.handle(message)  # as the broker carries it

    page = stack.browser("zhao", "/analytics").get("/analytics").text
    totals = page[page.index('id="totals"') : page.index("</dl>", page.index('id="totals"'))]
    assert "<dt>批准金额</dt><dd>¥129.00</dd>" in totals  # the amount approved
    assert "<dt>已付金额</dt>" in totals and "已批准" not in totals and "已付款" not in totals
    outcomes = page[page.index('<caption id="by-outcome">') :]
    assert '<th scope="row">已批准</th><td>1</td>' in outcomes  # the state
