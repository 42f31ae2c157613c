"""The console's finance pages for tenants' own provider accounts, in-process over the four
services: a provider's settlement file reconciled under provider and tenant (Stripe's CSV
pasted as text, Alipay's GBK bill uploaded as bytes, zip or bare CSV, built by the emulators'
own generators), the report naming both; a malformed provider file named as the field on the
page and nothing stored; each dispatch's provider on the payout page; WeChat Pay's abnormal
refund offered only when payout allows it, and its form reaching payout (the card's number
kept nowhere but in what went to payout)."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from sandbox.alipay.bill import render_detail, render_zip
from sandbox.alipay.dev_keys import DEV_SELLER_ID
from sandbox.alipay.store import Store
from sandbox.stripe.report import render
from services.payout.application import PayoutApplication
from services.payout.domain import Payout
from tests.integration.test_payout_api import DAY, Payouts, pid
from tests.support.console_stack import Stack, console_stack, hidden

CARD = "6222021234567890123"
RECONCILE = "/finance/reconciliations"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with console_stack(tmp_path) as made:
        yield made


def payouts(stack: Stack) -> Payouts:
    app: PayoutApplication = stack.services["payout"].http.state.payout
    return Payouts(stack.clients["payout"], app)


def paid_at(stack: Stack, provider: str, method: str, amount: int) -> Payout:
    """A payout of acme's paid through acme's own account at `provider` on DAY."""
    made = payouts(stack)
    payout = made.approve(method=method, amount=amount)
    made.app.record_dispatch(payout.id, DAY, provider=provider)
    return made.app.record_success(payout.id, f"re_{uuid.uuid4().hex[:12]}", DAY)


def abnormal(stack: Stack) -> Payout:
    """A payout whose refund at acme's WeChat Pay account ended ABNORMAL (as the executor
    records WeChat Pay's answer)."""
    made = payouts(stack)
    payout = made.approve(method="wechat_pay", amount=12900)
    made.app.record_dispatch(payout.id, DAY, provider="wechatpay")
    return made.app.record_failure(
        payout.id, "ABNORMAL: the payer's account is frozen", DAY, final=True,
        provider_status="abnormal",
    )  # fmt: skip


def payout_body(stack: Stack, payout: Payout) -> dict[str, Any]:
    answer = stack.clients["payout"].get(
        f"/v1/payouts/{pid(payout)}", headers=stack.staff("payout", "auditor")
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def reports(stack: Stack) -> list[dict[str, Any]]:
    answer = stack.clients["payout"].get(
        "/v1/reconciliations", headers=stack.staff("payout", "auditor")
    )
    assert answer.status_code == 200, answer.text
    listed: list[dict[str, Any]] = answer.json()["data"]
    return listed


def section(page: str, heading_id: str) -> str:
    start = page.index(f'id="{heading_id}"')
    return page[start : page.index("</section>", start)]


def stripe_csv(number: str, amount: int) -> str:
    """Stripe's itemized balance change report listing one refund (gross negative)."""
    refund = {
        "id": "txn_1",
        "created": DAY.timestamp(),
        "currency": "cny",
        "amount": -amount,
        "category": "refund",
        "source_id": "re_1",
        "charge_id": "ch_1",
        "payment_intent_id": "pi_1",
        "merchant_refund_no": number,
    }
    return render([refund]).decode("utf-8")


def alipay_store(number: str, amount: int) -> Store:
    """The Alipay emulator's store with one trade and its refund under `number`, paid on DAY."""
    store = Store(None)
    store.open()
    at = DAY.timestamp()
    trade = store.create_trade(total=amount, out_trade_no="ORD-1", at=at - 3600)
    store.add_refund(trade["trade_no"], number, amount, at=at, paid_at=at, notify_url=None)
    return store


def test_stripe_csv_pasted_as_text_is_reconciled_as_the_tenants(stack: Stack) -> None:
    paid = paid_at(stack, "stripe", "card", 4200)
    browser = stack.browser("zhao", RECONCILE)
    page = browser.get(RECONCILE).text
    assert '<option value="stripe" >stripe</option>' in page and 'name="tenant"' in page
    form = {
        **hidden(page, RECONCILE),
        "day": "2026-11-20",
        "provider": "stripe",
        "tenant": "acme",
        "report": stripe_csv(paid.number, 4200),
    }
    sent = browser.post(RECONCILE, data=form)
    assert sent.status_code == 200, sent.text
    assert re.search(r"/finance/reconciliations/rc_[0-9a-f]+$", str(sent.url))
    facts = sent.text[sent.text.index('<dl class="facts">') :]
    assert re.search(r"<dd><code>stripe</code></dd>\s*<dt>[^<]+</dt><dd>acme</dd>", facts)
    assert pid(paid) in section(sent.text, "kind-matched")  # the tenant's payout, matched
    [recorded] = reports(stack)
    assert (recorded["provider"], recorded["tenant"]) == ("stripe", "acme")

    listed = browser.get(RECONCILE).text
    row = section(listed, "reports")
    assert "<td><code>stripe</code></td><td>acme</td>" in row


def test_alipays_gbk_bill_is_uploaded_as_bytes_zip_or_bare(stack: Stack) -> None:
    paid = paid_at(stack, "alipay", "alipay", 9900)
    store = alipay_store(paid.number, 9900)
    zipped = render_zip(store, DEV_SELLER_ID, date(2026, 11, 20), now=DAY.timestamp() + 86400)
    bare = render_detail(store, DEV_SELLER_ID, date(2026, 11, 20), now=DAY.timestamp() + 86400)
    store.close()
    bare.decode("gbk")  # GBK, not UTF-8: the gateway's text path would refuse it
    with pytest.raises(UnicodeDecodeError):
        bare.decode("utf-8")
    browser = stack.browser("zhao", RECONCILE)
    for day, name, data, kind in (
        ("2026-11-20", "2088_20261120.zip", zipped, "application/zip"),
        ("2026-11-20", "2088_20261120_业务明细.csv", bare, "text/csv"),
    ):
        page = browser.get(RECONCILE).text
        fields = {**hidden(page, RECONCILE), "day": day, "provider": "alipay", "tenant": "acme"}
        sent = browser.post(RECONCILE, data=fields, files={"report_file": (name, data, kind)})
        assert sent.status_code == 200, sent.text
        assert pid(paid) in section(sent.text, "kind-matched"), name
        assert "<dd><code>alipay</code></dd>" in sent.text and "<dd>acme</dd>" in sent.text
    recorded = reports(stack)
    assert len(recorded) == 2  # the zip and its CSV are two files: two reports
    assert {(r["provider"], r["tenant"]) for r in recorded} == {("alipay", "acme")}


def test_a_malformed_provider_file_is_named_on_the_page_and_nothing_is_stored(
    stack: Stack,
) -> None:
    browser = stack.browser("zhao", RECONCILE)
    page = browser.get(RECONCILE).text
    base = {**hidden(page, RECONCILE), "day": "2026-11-20", "provider": "alipay"}
    fields = {**base, "tenant": "acme"}
    utf8 = "支付宝交易号,商户订单号\n".encode()  # UTF-8, where Alipay's bills are GBK
    upload = {"report_file": ("bill.csv", utf8, "text/csv")}
    refused = browser.post(RECONCILE, data=fields, files=upload)
    assert refused.status_code == 422, refused.text
    assert "<code>report_base64</code>" in refused.text and "GBK" in refused.text
    assert 'value="acme"' in refused.text  # the form keeps what was chosen
    assert base64.b64encode(utf8).decode() not in refused.text  # the file is not echoed

    pasted = {**fields, "provider": "stripe", "report": "id,amount\nre_1,42\n"}
    not_stripes = browser.post(RECONCILE, data=pasted)
    assert not_stripes.status_code == 422 and "<code>report</code>" in not_stripes.text
    assert "line 1" in not_stripes.text

    no_tenant = browser.post(RECONCILE, data={**base, "tenant": ""}, files=upload)
    assert no_tenant.status_code == 422 and "<code>tenant</code>" in no_tenant.text
    unknown = browser.post(RECONCILE, data={**fields, "provider": "paypal", "report": "x"})
    assert unknown.status_code == 422 and "<code>provider</code>" in unknown.text
    assert reports(stack) == []  # nothing was reconciled


def test_the_payout_page_names_each_dispatchs_provider(stack: Stack) -> None:
    through_stripe = paid_at(stack, "stripe", "card", 4200)
    through_gateway = payouts(stack).failed()
    unsent = payouts(stack).approve()
    browser = stack.browser("zhao", "/finance")
    shown = section(browser.get(f"/finance/payouts/{pid(through_stripe)}").text, "dispatches")
    assert re.search(r"<th scope=\"col\">[^<]+</th></tr></thead>", shown)
    assert f"<td>{through_stripe.number}</td><td><code>card</code></td>" in shown
    assert "<td><code>stripe</code></td>" in shown
    gateway = section(browser.get(f"/finance/payouts/{pid(through_gateway)}").text, "dispatches")
    assert "<td><code>gateway</code></td>" in gateway
    nothing = section(browser.get(f"/finance/payouts/{pid(unsent)}").text, "dispatches")
    assert '<td colspan="3">' in nothing


def test_the_abnormal_refund_is_offered_only_when_payout_allows_it_and_reaches_it(
    stack: Stack,
) -> None:
    stuck = abnormal(stack)
    closed = payouts(stack).failed()  # failed, but not ABNORMAL at WeChat Pay
    assert payout_body(stack, stuck)["abnormal_refund_allowed"] is True
    assert payout_body(stack, closed)["abnormal_refund_allowed"] is False
    browser = stack.browser("zhao", "/finance")
    action = f"/finance/payouts/{pid(stuck)}/abnormal-refund"
    page = browser.get(f"/finance/payouts/{pid(stuck)}").text
    assert f'action="{action}"' in page and 'value="USER_BANK_CARD"' in page
    other = browser.get(f"/finance/payouts/{pid(closed)}").text
    assert "/abnormal-refund" not in other and 'action="/finance/payouts/' in other

    fields = {**hidden(page, action), "type": "USER_BANK_CARD", "bank_account": CARD}
    missing = browser.post(action, data={**fields, "real_name": "李伟"})  # no bank type
    assert missing.status_code == 422 and "<code>bank_type</code>" in missing.text
    assert CARD not in missing.text and "李伟" not in missing.text  # never echoed back
    assert payout_body(stack, stuck)["actions"] == []  # nothing reached payout

    card = {**fields, "bank_type": "ICBC_DEBIT", "real_name": "李伟"}
    done = browser.post(action, data=card)
    assert done.status_code == 200, done.text
    assert browser.post(action, data=card).status_code == 200  # a double submit
    body = payout_body(stack, stuck)
    [asked] = body["actions"]
    assert asked["action"] == "abnormal_refund" and asked["actor"] == "zhao"
    assert asked["type"] == "USER_BANK_CARD" and asked["bank_type"] == "ICBC_DEBIT"
    assert asked["account"].endswith("0123") and CARD not in str(body)
    # acme has no WeChat Pay account here: payout records the request, then fails it again,
    # still ABNORMAL at WeChat Pay, so finance may ask again (and the page offers it again).
    assert body["status"] == "failed" and "abnormal refund not sent" in str(body["outcome"])
    assert body["abnormal_refund_allowed"] is True
    shown = browser.get(f"/finance/payouts/{pid(stuck)}").text
    assert "<code>abnormal_refund</code> — zhao (USER_BANK_CARD, ICBC_DEBIT," in shown
    assert f'action="{action}"' in shown
    # Settled meanwhile (a manual payment): payout no longer allows it, the page no longer
    # offers it.
    manual = f"/finance/payouts/{pid(stuck)}/manual-payment"
    form = {**hidden(shown, manual), "reference": "BT-20261120-0042"}
    assert browser.post(manual, data=form).status_code == 200
    assert payout_body(stack, stuck)["abnormal_refund_allowed"] is False
    assert action not in browser.get(f"/finance/payouts/{pid(stuck)}").text
