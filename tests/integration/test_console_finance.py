"""The console's finance pages end to end, in-process: signed in through the sandbox identity
provider, calling payout's and review's real staff APIs (in-process, SQLite) with the
person's own access token. Failed payouts come first; a payout shows its trail; retry, store
balance and manual payment are the person's and happen once per form; a settlement report is
reconciled and shown by mismatch kind; recovery claims are recovered or written off once;
refusals say why and change nothing; other roles are refused; pages speak zh-CN and en."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.console.bootstrap import console_app
from services.console.sessions import SqliteSessions
from services.console.settings import ConsoleSettings
from services.payout.application import PayoutApplication
from services.payout.bootstrap import http_api
from services.payout.settings import PayoutSettings
from services.review.application import ReviewApplication
from services.review.bootstrap import staff_api
from services.review.policy_document import default_policy
from services.review.queue import ReviewQueue
from shared.settings import ServiceSettings
from shared.staff import StaffAuth
from shared.staff_oidc import OidcConfig
from shared.store import store_env
from tests.integration.test_console import CONSOLE_URL, csrf, form_fields, sign_in
from tests.integration.test_payout_api import HEADER, Payouts, line, pid
from tests.support.identity import serve_identity
from tests.support.review_api import ANN, SECRET, Clock, Review, key


@dataclass
class Stack:
    issuer: str
    payouts: Payouts
    review: Review
    console: TestClient

    def browser(self) -> TestClient:
        return TestClient(self.console.app, base_url=CONSOLE_URL)

    def payout(self, payout_id: str) -> dict[str, Any]:
        found = self.payouts.client.get(f"/v1/payouts/{payout_id}", headers=ANN_FINANCE)
        assert found.status_code == 200, found.text
        body: dict[str, Any] = found.json()
        return body


ANN_FINANCE: dict[str, str] = {}  # filled by the fixture: an HS256 finance token for payout


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    from shared.staff_tokens import encode, staff_claims

    with serve_identity(tmp_path / "idp") as issuer:
        payout_settings = PayoutSettings(
            env="test", data_dir=tmp_path, jwt_secret=SECRET, oidc_issuer=issuer
        )
        payout_app = PayoutApplication(env=store_env(payout_settings, "payout"))
        payout_http = http_api(payout_app, payout_settings)
        clock = Clock()
        review_settings = ServiceSettings(env="test", data_dir=tmp_path)
        review_app = ReviewApplication(
            default_policy(), env=store_env(review_settings, "review"), clock=clock
        )
        review_app.record_shipped_policy()
        queue = ReviewQueue(review_app)
        review_http = staff_api(review_app, queue, StaffAuth(SECRET, OidcConfig(issuer=issuer)))
        console = console_app(
            ConsoleSettings(
                env="test", data_dir=tmp_path, oidc_issuer=issuer, console_url=CONSOLE_URL
            ),
            SqliteSessions(tmp_path / "console.sqlite", "console-test-session-secret"),
            transports={
                "payout": httpx.ASGITransport(app=payout_http),
                "review": httpx.ASGITransport(app=review_http),
            },
        )
        token = encode(staff_claims("auditor.al", ["auditor"], 3600), SECRET)
        ANN_FINANCE["Authorization"] = f"Bearer {token}"
        try:
            with (
                TestClient(payout_http) as payout_client,
                TestClient(review_http) as review_client,
                TestClient(console, base_url=CONSOLE_URL) as console_client,
            ):
                yield Stack(
                    issuer,
                    Payouts(payout_client, payout_app),
                    Review(review_client, review_app, queue, clock),
                    console_client,
                )
        finally:
            payout_app.close()
            review_app.close()


def section(page: str, heading_id: str) -> str:
    start = page.index(f'id="{heading_id}"')
    return page[start : page.index("</section>", start)]


# -- payouts ---------------------------------------------------------------------------------------


def test_failed_payouts_come_first_and_a_payout_shows_its_trail(stack: Stack) -> None:
    failed = pid(stack.payouts.failed(3000))
    paid = pid(stack.payouts.paid(4200))
    pending = pid(stack.payouts.approve(amount=990))
    sign_in(stack.console, stack.issuer, "zhao", start="/finance")
    page = stack.console.get("/finance")
    assert page.status_code == 200, page.text
    first = section(page.text, "failed")
    assert failed in first and paid not in first and pending not in first
    everything = section(page.text, "all")
    assert [everything.index(p) for p in (pending, paid, failed)] == sorted(
        everything.index(p) for p in (pending, paid, failed)
    )  # newest first
    assert "¥30.00" in first and "失败" in first
    only_paid = section(stack.console.get("/finance", params={"status": "paid"}).text, "all")
    assert paid in only_paid and failed not in only_paid

    shown = stack.console.get(f"/finance/payouts/{failed}").text
    assert "card closed" in shown and "<code>Dispatched</code>" in shown
    assert f"<td>{failed}</td>" in shown  # the merchant refund number dispatched
    assert "无：以退款币种支付。" in shown  # no FX record for a CNY payout
    for action in ("retry", "switch-to-store-balance", "manual-payment"):
        assert f'action="/finance/payouts/{failed}/{action}"' in shown
    assert "/manual-payment" not in stack.console.get(f"/finance/payouts/{paid}").text


def test_a_retry_is_the_persons_happens_once_and_a_second_is_refused(stack: Stack) -> None:
    failed = pid(stack.payouts.failed())
    sign_in(stack.console, stack.issuer, "zhao", start=f"/finance/payouts/{failed}")
    page = stack.console.get(f"/finance/payouts/{failed}").text
    form = form_fields(page, f"/finance/payouts/{failed}/retry")
    first = stack.console.post(f"/finance/payouts/{failed}/retry", data=form)
    assert first.status_code == 200, first.text
    again = stack.console.post(f"/finance/payouts/{failed}/retry", data=form)  # double submit
    assert again.status_code == 200, again.text
    body = stack.payout(failed)
    assert body["series"] == 2 and body["status"] == "pending"
    actions = body["actions"]
    assert [(a["action"], a["actor"]) for a in actions] == [("retry", "zhao")]
    assert "<code>retry</code> — zhao" in again.text

    fresh = {**form, "idempotency_key": "another-form"}
    refused = stack.console.post(f"/finance/payouts/{failed}/retry", data=fresh)
    assert refused.status_code == 409 and "payout-action-refused" in refused.text
    assert stack.payout(failed)["series"] == 2


def test_store_balance_needs_the_consent_reference_and_manual_payment_pays(stack: Stack) -> None:
    switched = pid(stack.payouts.failed())
    manual = pid(stack.payouts.failed())
    sign_in(stack.console, stack.issuer, "zhao", start=f"/finance/payouts/{switched}")
    page = stack.console.get(f"/finance/payouts/{switched}").text
    action = f"/finance/payouts/{switched}/switch-to-store-balance"
    fields = form_fields(page, action)
    blank = stack.console.post(action, data={**fields, "consent_reference": "  "})
    assert blank.status_code == 422 and "<code>consent_reference</code>" in blank.text
    assert stack.payout(switched)["status"] == "failed"
    done = stack.console.post(action, data={**fields, "consent_reference": "CS-2026-1187"})
    assert done.status_code == 200, done.text
    body = stack.payout(switched)
    assert body["method"] == "store_balance" and body["consent_reference"] == "CS-2026-1187"
    assert body["actions"][0]["actor"] == "zhao"

    page = stack.console.get(f"/finance/payouts/{manual}").text
    action = f"/finance/payouts/{manual}/manual-payment"
    form = {**form_fields(page, action), "reference": "BT-20261120-0042", "note": "ICBC"}
    assert stack.console.post(action, data=form).status_code == 200
    assert stack.console.post(action, data=form).status_code == 200  # a double submit
    body = stack.payout(manual)
    assert body["status"] == "paid" and body["provider_reference"] == "BT-20261120-0042"
    history = body["history"]
    paid_by = [e["data"].get("actor") for e in history if e["type"] != "Requested"]
    assert paid_by[-1] == "zhao" and len(history) == 4


# -- reconciliation --------------------------------------------------------------------------------


def test_a_settlement_report_is_reconciled_once_and_shown_by_mismatch_kind(stack: Stack) -> None:
    matched, differs = stack.payouts.paid(4200), stack.payouts.paid(5000)
    unlisted = stack.payouts.paid(1000)
    stranger = "po_" + "a" * 32
    csv = "\r\n".join(
        [HEADER, line(pid(matched), 4200), line(pid(differs), 5100), line(stranger, 900), ""]
    )
    sign_in(stack.console, stack.issuer, "zhao", start="/finance/reconciliations")
    page = stack.console.get("/finance/reconciliations").text
    form = {**form_fields(page, "/finance/reconciliations"), "day": "2026-11-20", "report": csv}
    first = stack.console.post("/finance/reconciliations", data=form)
    assert first.status_code == 200, first.text
    assert re.search(r"/finance/reconciliations/rc_[0-9a-f]+$", str(first.url))
    report = first.text
    headings = re.findall(r'<h2 id="kind-([a-z_]+)">', report)
    assert headings == ["missing_on_our_side", "missing_at_provider", "amount_differs", "matched"]
    assert stranger in section(report, "kind-missing_on_our_side")
    assert pid(unlisted) in section(report, "kind-missing_at_provider")
    assert pid(differs) in section(report, "kind-amount_differs")
    assert "金额不符 (1)" in report and "zhao" in report

    again = stack.console.post("/finance/reconciliations", data=form)  # a double submit
    assert str(again.url) == str(first.url)
    listed = stack.console.get("/finance/reconciliations").text
    assert len(re.findall(r'href="/finance/reconciliations/rc_', listed)) == 1

    broken = {**form, "day": "2026-11-21", "report": HEADER + "\npo_2,gw,abc,CNY,alipay,x,y\n"}
    refused = stack.console.post("/finance/reconciliations", data=broken)
    assert refused.status_code == 422 and "line 2" in refused.text
    assert 'value="2026-11-21"' in refused.text  # the form keeps what was typed
    no_day = stack.console.post("/finance/reconciliations", data={**form, "day": "20/11/2026"})
    assert no_day.status_code == 422 and "<code>day</code>" in no_day.text
    listed = stack.console.get("/finance/reconciliations").text
    assert len(re.findall(r'href="/finance/reconciliations/rc_', listed)) == 1


def test_a_settlement_file_is_uploaded_with_its_csrf_token_and_read_as_utf8(stack: Stack) -> None:
    paid = stack.payouts.paid(4200)
    csv = "\ufeff" + "\r\n".join([HEADER, line(pid(paid), 4200), ""])  # Excel's BOM too
    sign_in(stack.console, stack.issuer, "zhao", start="/finance/reconciliations")
    page = stack.console.get("/finance/reconciliations").text
    assert 'enctype="multipart/form-data"' in page
    fields = {**form_fields(page, "/finance/reconciliations"), "day": "2026-11-22"}
    upload = {"report_file": ("settlement-2026-11-22.csv", csv.encode(), "text/csv")}

    forged = {k: v for k, v in fields.items() if k != "csrf_token"}
    refused = stack.console.post("/finance/reconciliations", data=forged, files=upload)
    assert refused.status_code == 403
    listed = stack.console.get("/finance/reconciliations").text
    assert "2026-11-22" not in listed  # nothing was reconciled

    latin = {"report_file": ("s.csv", "日期".encode("gb18030") + b"\xff", "text/csv")}
    unreadable = stack.console.post("/finance/reconciliations", data=fields, files=latin)
    assert unreadable.status_code == 422 and "文件不是 UTF-8 文本。" in unreadable.text

    sent = stack.console.post("/finance/reconciliations", data=fields, files=upload)
    assert sent.status_code == 200, sent.text
    assert re.search(r"/finance/reconciliations/rc_[0-9a-f]+$", str(sent.url))
    assert pid(paid) in section(sent.text, "kind-matched")


# -- recovery claims -------------------------------------------------------------------------------


def split(stack: Stack) -> str:
    refund_id = stack.review.request(600)
    body = {
        "amount": {"amount": 60000, "currency": "CNY"},
        "liability": {"platform": 10000, "merchant": 30000, "carrier": 20000},
    }
    approved = stack.review.post(refund_id, "approve", key(ANN, f"split-{refund_id}"), body)
    assert approved.status_code == 200, approved.text
    return refund_id


def claims_of(stack: Stack, refund_id: str) -> dict[str, dict[str, Any]]:
    case = stack.review.case(refund_id)
    return {claim["party"]: claim for claim in case["claims"]}


def test_open_claims_are_recovered_or_written_off_once_by_the_person(stack: Stack) -> None:
    refund_id = split(stack)
    sign_in(stack.console, stack.issuer, "zhao", start="/finance/claims")
    page = stack.console.get("/finance/claims").text
    assert page.count(refund_id) >= 2 and "¥300.00" in page and "¥200.00" in page
    recover = f"/finance/claims/{refund_id}/carrier/recover"
    form = {**form_fields(page, recover), "reference": "SF-991"}
    first = stack.console.post(recover, data=form)
    assert first.status_code == 200, first.text
    assert stack.console.post(recover, data=form).status_code == 200  # a double submit
    carrier = claims_of(stack, refund_id)["carrier"]
    assert carrier["state"] == "recovered"
    assert carrier["settlement"]["by"] == "zhao"
    assert carrier["version"] == 2  # settled once
    assert f"/finance/claims/{refund_id}/carrier/recover" not in first.text  # open ones only

    write_off = f"/finance/claims/{refund_id}/merchant/write-off"
    fields = form_fields(page, write_off)
    blank = stack.console.post(write_off, data={**fields, "reason": ""})
    assert blank.status_code == 422 and "<code>reason</code>" in blank.text
    # The carrier's claim, settled already, from the form of the page as first shown: refused.
    stale = {**form_fields(page, f"/finance/claims/{refund_id}/carrier/write-off"), "reason": "x"}
    refused = stack.console.post(f"/finance/claims/{refund_id}/carrier/write-off", data=stale)
    assert refused.status_code == 409 and "claim-closed" in refused.text
    assert claims_of(stack, refund_id)["carrier"]["state"] == "recovered"
    assert claims_of(stack, refund_id)["merchant"]["state"] == "open"

    done = stack.console.post(write_off, data={**fields, "reason": "the shop closed"})
    assert done.status_code == 200
    assert claims_of(stack, refund_id)["merchant"]["state"] == "written_off"
    settled = stack.console.get("/finance/claims", params={"state": "any"}).text
    assert "the shop closed" in settled and "SF-991" in settled and "已核销" in settled


# -- roles and languages ---------------------------------------------------------------------------


def test_other_roles_are_refused_finance_and_admins_are_not(stack: Stack) -> None:
    failed = pid(stack.payouts.failed())
    for username in ("wu", "bob", "audrey"):
        browser = stack.browser()
        sign_in(browser, stack.issuer, username, start="/finance")
        for path in ("/finance", f"/finance/payouts/{failed}", "/finance/reconciliations"):
            answer = browser.get(path)
            assert answer.status_code == 403 and "您的角色无权打开此页面" in answer.text
        page = browser.get("/").text
        nav = page[page.index("<nav") : page.index("</nav>")]
        assert 'href="/finance"' not in nav
        refused = browser.post(f"/finance/payouts/{failed}/retry", data={"csrf_token": csrf(page)})
        assert refused.status_code == 403
    assert stack.payout(failed)["status"] == "failed"
    admin = stack.browser()
    sign_in(admin, stack.issuer, "root", start="/finance/claims")
    for path in ("/finance", "/finance/claims", "/finance/reconciliations"):
        assert admin.get(path).status_code == 200


def test_finance_speaks_english_too(stack: Stack) -> None:
    failed = pid(stack.payouts.failed())
    sign_in(stack.console, stack.issuer, "zhao", start="/finance")
    zh = stack.console.get("/finance").text
    assert "失败的付款" in zh
    switched = stack.console.post(
        "/language", data={"csrf_token": csrf(zh), "locale": "en", "next": "/finance"}
    )
    assert '<html lang="en">' in switched.text and "Failed payouts" in switched.text
    assert "CN¥42.00" in switched.text
    page = stack.console.get(f"/finance/payouts/{failed}").text
    assert "Switch to store balance" in page and "Customer&#39;s consent reference" in page
    assert "Recovery claims" in stack.console.get("/finance/claims").text
