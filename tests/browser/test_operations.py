"""Auditors and admins in the browser: an auditor opens a refund's timeline and the ledgers'
verify; an admin publishes a policy version with a mistake, sees the field named, fixes it
and publishes it once."""

from __future__ import annotations

import re

import pytest
import yaml
from playwright.sync_api import expect

from tests.browser.support import Console, Window, sign_in

pytestmark = [pytest.mark.browser]

VERIFY = "立即校验各服务的账本"  # the audit page's link to the ledgers' check
AUTOMATIC = 11900  # 119.00 CNY: approved by the policy and paid without a person


def test_an_auditor_opens_a_refunds_timeline_and_the_ledgers_verify(
    console: Console, people: Window
) -> None:
    refund_id = console.platform.request_refund(AUTOMATIC)
    console.wait_status(refund_id, "paid")
    audrey = people()
    sign_in(audrey, console, "audrey", start="/audit")
    audrey.get_by_label("退款编号").fill(refund_id)
    audrey.get_by_role("button", name="显示时间线").click()
    expect(audrey.locator("#timeline")).to_contain_text(refund_id)
    timeline = audrey.locator("table.timeline tbody tr")
    expect(timeline.first).to_be_visible()
    services = timeline.locator("td:nth-child(2)").all_inner_texts()
    types = timeline.locator("td:nth-child(3)").all_inner_texts()
    # From the request at intake to the payment, each service's part, in order of cause.
    assert "RefundRequest.Requested" in types and "ReviewCase.Opened" in types, types
    assert types.index("RefundRequest.Requested") < types.index("ReviewCase.Opened"), types
    assert {s.split(" #")[0] for s in services} >= {"受理", "审核", "付款"}, services
    # Each caused event links to its cause on the same page.
    assert audrey.locator("table.timeline a[href^='#event-']").count() >= 1

    # Verify: each service recomputes its ledger on request, and each of the four is intact.
    audrey.get_by_role("link", name=VERIFY).click()
    audrey.wait_for_url(re.compile(r".*/audit/ledgers$"))
    ledgers = audrey.locator("#ledger-results tbody tr")
    expect(ledgers).to_have_count(4)
    for row in range(4):
        expect(ledgers.nth(row).locator("td").nth(1)).to_have_text("完好")


def test_an_admin_fixes_a_policy_mistake_the_page_names_then_publishes_once(
    console: Console, people: Window
) -> None:
    root = people()
    sign_in(root, console, "root", start="/admin/policies/new")
    document_box = root.locator("textarea#document")
    document = yaml.safe_load(document_box.input_value())
    document["version"] = "2026-12-01"
    document["auto_approval"]["max_risk"] = "lots"  # the mistake: not a number
    document_box.fill(yaml.safe_dump(document, sort_keys=True, allow_unicode=True))
    root.get_by_role("button", name="发布", exact=True).click()

    alert = root.get_by_role("alert")
    expect(alert).to_contain_text("auto_approval.max_risk")
    with console.staff("review", "root") as review:
        versions = [v["version"] for v in review.get("/v1/policies").json()["data"]]
    assert "2026-12-01" not in versions  # refused: nothing published

    kept = yaml.safe_load(root.locator("textarea#document").input_value())
    assert kept["auto_approval"]["max_risk"] == "lots"  # the text is kept for fixing
    kept["auto_approval"]["max_risk"] = 30
    root.locator("textarea#document").fill(yaml.safe_dump(kept, sort_keys=True))
    root.get_by_role("button", name="发布", exact=True).click()
    root.wait_for_url(re.compile(r".*/admin/policies/2026-12-01$"))
    expect(root.locator("h1")).to_contain_text("2026-12-01")
    with console.staff("review", "root") as review:
        versions = [v["version"] for v in review.get("/v1/policies").json()["data"]]
    assert versions.count("2026-12-01") == 1


def test_finance_retries_a_payout_the_gateway_closed_and_it_is_paid_once(
    console: Console, people: Window
) -> None:
    console.platform.gateway.post("/control", json={"close_next": 1}).raise_for_status()
    paid_before = len(console.platform.ledger())
    refund_id = console.platform.request_refund(AUTOMATIC)
    failed = console.wait_status(refund_id, "payout_failed")
    payout_id = failed["payout"]["payout_id"]

    zhao = people()
    sign_in(zhao, console, "zhao", start="/finance")
    zhao.locator(f"table.failed a[href='/finance/payouts/{payout_id}']").click()
    zhao.wait_for_url(re.compile(f".*/finance/payouts/{payout_id}$"))
    retry = zhao.locator(f"form[action='/finance/payouts/{payout_id}/retry']")
    retry.get_by_role("button", name="重试").click()
    expect(retry).to_have_count(0)  # no longer failed: the form is gone

    paid = console.wait_status(refund_id, "paid")
    ledger = console.platform.ledger()
    assert len(ledger) == paid_before + 1
    # The retry is a new attempt series (its own merchant refund number): one payment.
    mine = [e for e in ledger if e["provider_reference"] == paid["payout"]["provider_reference"]]
    assert len(mine) == 1 and mine[0]["amount"] == AUTOMATIC, (mine, paid["payout"])
    with console.staff("payout", "zhao") as payout:
        shown = payout.get(f"/v1/payouts/{payout_id}").json()
    assert shown["status"] == "paid", shown["status"]
