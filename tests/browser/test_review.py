"""Reviewers in the browser: two people complete an important case's two approvals and the
refund is paid; the first reviewer's second approval is refused on the page and changes
nothing; the queue's keyboard (j/k move, Enter opens, c claims)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import Console, Window, sign_in

pytestmark = [pytest.mark.browser]

IMPORTANT = 250000  # 2500.00 CNY: the default policy's `important` tier, two approvals
MANUAL = 80000  # 800.00 CNY: over the automatic limit, one reviewer decides


def approve(page: Page, refund_id: str) -> None:
    """The approve form as the page fills it (the whole refundable amount), submitted."""
    form = page.locator(f"form[action='/cases/{refund_id}/approve']")
    form.locator("textarea[name=note]").fill("Photo shows the stain.")
    form.locator("button[name=then][value='']").click()


def test_two_reviewers_approve_an_important_case_and_it_is_paid_once(
    console: Console, people: Window
) -> None:
    refund_id = console.platform.request_refund(IMPORTANT)
    console.wait_status(refund_id, "in_review")
    with console.staff("review", "wang") as review:
        assert review.get(f"/v1/cases/{refund_id}").json()["tier"] == "important"

    ann = people()
    sign_in(ann, console, "ann", start=f"/cases/{refund_id}")
    expect(ann.locator(".still-needed")).to_contain_text("还需 2 个批准。")
    approve(ann, refund_id)
    expect(ann.locator(".still-needed")).to_contain_text("还需一个批准。")

    # ann again, on the form the page now shows: refused on screen, nothing changes.
    approve(ann, refund_id)
    alert = ann.get_by_role("alert")
    expect(alert).to_contain_text("第二个批准必须由另一个人作出。")
    expect(alert).to_contain_text("duty.second_approver")
    with console.staff("review", "wang") as review:
        case = review.get(f"/v1/cases/{refund_id}").json()
    assert [a["person"] for a in case["approvals"]] == ["ann"]
    assert case["state"] == "pending"
    assert console.platform.refund(refund_id)["status"] == "in_review"

    bob = people()
    sign_in(bob, console, "bob", start=f"/cases/{refund_id}")
    approve(bob, refund_id)
    expect(bob.locator(".still-needed")).to_contain_text("无：案件已有决定。")

    paid = console.wait_status(refund_id, "paid")
    approvers = [a["person"] for a in paid["decision"].get("approvals", [])] or [
        paid["decision"]["decided_by"]
    ]
    assert "bob" in approvers
    ledger = [e for e in console.platform.ledger() if e["amount"] == IMPORTANT]
    assert [e["merchant_refund_no"] for e in ledger] == [paid["payout"]["payout_id"]]


def test_the_queue_keyboard_moves_opens_and_claims(console: Console, people: Window) -> None:
    first = console.platform.request_refund(MANUAL)
    second = console.platform.request_refund(MANUAL)
    for refund_id in (first, second):
        console.wait_status(refund_id, "in_review")
    ann = people()
    sign_in(ann, console, "ann", start="/queue?state=pending")
    ann.wait_for_load_state("load")  # the queue's keys are bound once its script has run
    rows = ann.locator("#queue tbody tr[data-href]")
    hrefs = [rows.nth(i).get_attribute("data-href") for i in range(rows.count())]
    wanted = hrefs.index(f"/cases/{second}")

    selected = ann.locator("#queue tbody tr.selected")
    for _ in range(wanted + 1):
        ann.keyboard.press("j")
    expect(selected).to_have_attribute("data-href", f"/cases/{second}")
    # Away one row and back (up then down from the last row: `j` stops at the end).
    away, back = ("k", "j") if wanted == len(hrefs) - 1 else ("j", "k")
    ann.keyboard.press(away)
    expect(selected).not_to_have_attribute("data-href", f"/cases/{second}")
    ann.keyboard.press(back)
    expect(selected).to_have_attribute("data-href", f"/cases/{second}")

    with ann.expect_navigation():
        ann.keyboard.press("c")
    with console.staff("review", "wang") as review:
        assert review.get(f"/v1/cases/{second}").json()["assignee"] == "ann"
        assert review.get(f"/v1/cases/{first}").json()["assignee"] is None

    for _ in range(hrefs.index(f"/cases/{first}") + 1):
        ann.keyboard.press("j")
    expect(selected).to_have_attribute("data-href", f"/cases/{first}")
    ann.keyboard.press("Enter")
    ann.wait_for_url(re.compile(f".*/cases/{first}$"))
    expect(ann.locator("h1")).to_contain_text(first)
