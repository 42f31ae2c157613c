"""The console's warehouse pages end to end, in-process: signed in through the sandbox
identity provider, calling review's real returns API (in-process, SQLite, the example return
policy) with the person's own access token. The list filters, sorts and pages; a return
shows its RMA, items, deadlines, the carrier's trail and its steps; the receipt form is
recorded under the person's name once per form; refusals name the field and change nothing;
other roles are refused; pages speak zh-CN and en."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from services.console.bootstrap import console_app
from services.console.pages import warehouse
from services.console.sessions import SqliteSessions
from services.console.settings import ConsoleSettings
from services.review.application import ReviewApplication
from services.review.bootstrap import staff_api
from services.review.queue import ReviewQueue
from shared.settings import ServiceSettings
from shared.staff import StaffAuth
from shared.staff_oidc import OidcConfig
from shared.store import store_env
from tests.integration.test_console import CONSOLE_URL, csrf, form_fields, sign_in
from tests.integration.test_review_returns import RETURNS_POLICY, Clock, Desk
from tests.support.identity import serve_identity
from tests.support.review_api import SECRET


@dataclass
class Stack:
    issuer: str
    desk: Desk
    console: TestClient

    def browser(self) -> TestClient:
        return TestClient(self.console.app, base_url=CONSOLE_URL)

    def stored(self) -> int:
        return len(self.desk.app.recorder.select_notifications(start=1, limit=100_000))

    def returned(self, state: str, number: str) -> str:
        """A return approved by rule (a T-shirt and two caps), then shipped and delivered as
        asked; each a minute after the previous one."""
        self.desk.clock.now += timedelta(minutes=1)
        refund_id = self.desk.request(
            ("TEE", "apparel", 1, 19900), ("CAP", "apparel", 2, 5000), reason="changed_mind"
        )
        if state in ("in_transit", "delivered"):
            self.desk.ship(refund_id, number)
        if state == "delivered":
            assert self.desk.deliver_parcel(number)
        assert self.desk.returned(refund_id).state == state
        return refund_id


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with serve_identity(tmp_path / "idp") as issuer:
        settings = ServiceSettings(env="test", data_dir=tmp_path)
        clock = Clock()
        app = ReviewApplication(RETURNS_POLICY, env=store_env(settings, "review"), clock=clock)
        app.record_shipped_policy()
        review_http = staff_api(app, ReviewQueue(app), StaffAuth(SECRET, OidcConfig(issuer=issuer)))
        console = console_app(
            ConsoleSettings(
                env="test", data_dir=tmp_path, oidc_issuer=issuer, console_url=CONSOLE_URL
            ),
            SqliteSessions(tmp_path / "console.sqlite", "console-test-session-secret"),
            transports={"review": httpx.ASGITransport(app=review_http)},
        )
        try:
            with TestClient(review_http), TestClient(console, base_url=CONSOLE_URL) as client:
                yield Stack(issuer, Desk(app, clock), client)
        finally:
            app.close()


def new(stack: Stack, state: str, number: str = "SF1000000000001") -> str:
    return stack.returned(state, number)


def receipt_form(page: str, refund_id: str) -> dict[str, str]:
    """The receipt form as the page offers it: every unit came back as expected."""
    fields = form_fields(page, f"/warehouse/{refund_id}/receipt")
    start = page.index(f'action="/warehouse/{refund_id}/receipt"')
    form = page[start : page.index("</form>", start)]
    quantities = dict(re.findall(r'name="(items\.\d+\.quantity)"[^>]*value="(\d+)"', form))
    assert quantities, "no quantities on the receipt form"
    conditions = {name.replace("quantity", "condition"): "as_expected" for name in quantities}
    return {**fields, **quantities, **conditions}


def listed(page: str) -> list[str]:
    return re.findall(r'<a href="/warehouse/(rf_[0-9a-f]+)">', page)


# -- the list -------------------------------------------------------------------------------------


def test_the_list_filters_by_state_and_carrier_sorts_and_pages(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    awaited = new(stack, "awaiting_return")
    moving = new(stack, "in_transit", "SF1000000000002")
    arrived = new(stack, "delivered", "SF1000000000003")
    sign_in(stack.console, stack.issuer, "wu", start="/warehouse")
    page = stack.console.get("/warehouse")
    assert page.status_code == 200, page.text
    assert listed(page.text) == [arrived, moving, awaited]  # newest first
    assert "已送达" in page.text and "顺丰速运" in page.text  # state and carrier in words
    nav = page.text[page.text.index("<nav") : page.text.index("</nav>")]
    assert 'href="/warehouse"' in nav and 'href="/finance"' not in nav

    assert listed(stack.console.get("/warehouse", params={"state": "delivered"}).text) == [arrived]
    expected = stack.console.get("/warehouse", params={"state": "awaiting_return"}).text
    assert listed(expected) == [awaited]
    assert listed(stack.console.get("/warehouse", params={"carrier": "shunfeng"}).text) == [
        arrived,
        moving,
    ]
    assert listed(stack.console.get("/warehouse", params={"carrier": "ems"}).text) == []
    due_first = listed(stack.console.get("/warehouse", params={"sort": "due"}).text)
    assert set(due_first) == {awaited, moving, arrived} and due_first[-1] == moving  # no clock

    monkeypatch.setattr(warehouse, "PAGE_SIZE", 2)
    first = stack.console.get("/warehouse").text
    assert listed(first) == [arrived, moving]
    older = re.search(r'href="(/warehouse\?starting_after=[^"]+)">', first)
    assert older is not None
    second = stack.console.get(older.group(1).replace("&amp;", "&")).text
    assert listed(second) == [awaited]
    newer = re.search(r'href="(/warehouse\?ending_before=[^"]+)">', second)
    assert newer is not None
    assert listed(stack.console.get(newer.group(1).replace("&amp;", "&")).text) == [
        arrived,
        moving,
    ]


def test_other_roles_are_refused_the_warehouse(stack: Stack) -> None:
    refund_id = new(stack, "delivered")
    for username in ("zhao", "bob"):
        browser = stack.browser()
        sign_in(browser, stack.issuer, username, start="/warehouse")
        for path in ("/warehouse", f"/warehouse/{refund_id}"):
            answer = browser.get(path)
            assert answer.status_code == 403 and "您的角色无权打开此页面" in answer.text
            assert "SF1000000000001" not in answer.text  # nothing of the return shown
    admin = stack.browser()
    sign_in(admin, stack.issuer, "root", start=f"/warehouse/{refund_id}")
    assert admin.get(f"/warehouse/{refund_id}").status_code == 200


# -- one return and its receipt ------------------------------------------------------------------


def test_a_return_shows_its_rma_items_deadlines_trail_and_steps(stack: Stack) -> None:
    refund_id = new(stack, "delivered")
    found = stack.desk.returned(refund_id)
    sign_in(stack.console, stack.issuer, "wu", start=f"/warehouse/{refund_id}")
    page = stack.console.get(f"/warehouse/{refund_id}").text
    assert found.rma in page and "<code>TEE</code>" in page and "<code>CAP</code>" in page
    assert "已签收" in page and "已揽收" in page  # the carrier's trail
    assert "SF1000000000001" in page
    assert "已超时" in page or "剩余" in page  # the receipt-by countdown
    assert "tenant:acme" in page  # the step's actor (the shipment, by the tenant)
    fields = form_fields(page, f"/warehouse/{refund_id}/receipt")
    assert fields["idempotency_key"] and fields["items.0.sku"] == "TEE"
    assert "顾客损坏" in page and "缺少部件" in page  # conditions translated


def test_a_receipt_is_the_persons_and_a_double_submit_records_it_once(stack: Stack) -> None:
    refund_id = new(stack, "delivered")
    sign_in(stack.console, stack.issuer, "wu", start=f"/warehouse/{refund_id}")
    page = stack.console.get(f"/warehouse/{refund_id}").text
    form = {
        **form_fields(page, f"/warehouse/{refund_id}/receipt"),
        "items.0.quantity": "1",
        "items.0.condition": "as_expected",
        "items.0.photos": "https://cdn.example.com/wh/1.jpg\n https://cdn.example.com/wh/2.jpg \n",
        "items.1.quantity": "2",
        "items.1.condition": "as_expected",
        "note": "Box intact.",
    }
    first = stack.console.post(f"/warehouse/{refund_id}/receipt", data=form)
    assert first.status_code == 200, first.text
    after_first = stack.stored()
    again = stack.console.post(f"/warehouse/{refund_id}/receipt", data=form)  # a double submit
    assert again.status_code == 200, again.text
    assert stack.stored() == after_first
    found = stack.desk.returned(refund_id)
    assert found.inspection is not None and found.inspection["by"] == "wu"
    assert found.inspection["lines"][0]["photos"] == [
        "https://cdn.example.com/wh/1.jpg",
        "https://cdn.example.com/wh/2.jpg",
    ]
    assert "Box intact." in again.text and "wu" in again.text
    assert f'action="/warehouse/{refund_id}/receipt"' not in again.text  # nothing more to record


def test_refusals_name_the_field_and_change_nothing(stack: Stack) -> None:
    awaited = new(stack, "awaiting_return")
    sign_in(stack.console, stack.issuer, "wu", start=f"/warehouse/{awaited}")
    page = stack.console.get(f"/warehouse/{awaited}").text
    before = stack.stored()
    not_shipped = stack.console.post(
        f"/warehouse/{awaited}/receipt", data=receipt_form(page, awaited)
    )
    assert not_shipped.status_code == 409
    assert "return-not-receivable" in not_shipped.text
    assert "当前状态下审核服务拒绝了此操作" in not_shipped.text
    assert stack.stored() == before and stack.desk.returned(awaited).state == "awaiting_return"

    arrived = new(stack, "delivered", "SF1000000000009")
    page = stack.console.get(f"/warehouse/{arrived}").text
    fields = receipt_form(page, arrived)
    assert fields["items.0.quantity"] == "1" and fields["items.1.quantity"] == "2"
    before = stack.stored()
    too_many = stack.console.post(
        f"/warehouse/{arrived}/receipt", data={**fields, "items.1.quantity": "3"}
    )
    assert too_many.status_code == 422, too_many.text
    assert "<code>items.1.quantity</code>" in too_many.text
    unreadable = stack.console.post(
        f"/warehouse/{arrived}/receipt", data={**fields, "items.0.quantity": "one"}
    )
    assert unreadable.status_code == 422 and "<code>items.0.quantity</code>" in unreadable.text
    assert 'value="one"' in unreadable.text  # the form keeps what was typed
    not_https = stack.console.post(
        f"/warehouse/{arrived}/receipt",
        data={**fields, "items.0.photos": "http://cdn.example.com/1.jpg"},
    )
    assert not_https.status_code == 422 and "items.0.photos.0" in not_https.text
    assert stack.stored() == before and stack.desk.returned(arrived).state == "delivered"

    done = stack.console.post(f"/warehouse/{arrived}/receipt", data=fields)
    assert done.status_code == 200
    fresh = {**fields, "idempotency_key": "another-form"}
    twice = stack.console.post(f"/warehouse/{arrived}/receipt", data=fresh)
    assert twice.status_code == 409  # already received: a new form is refused, not recorded


def test_the_warehouse_speaks_english_too(stack: Stack) -> None:
    refund_id = new(stack, "in_transit")
    sign_in(stack.console, stack.issuer, "wu", start="/warehouse")
    zh = stack.console.get("/warehouse").text
    switched = stack.console.post(
        "/language", data={"csrf_token": csrf(zh), "locale": "en", "next": "/warehouse"}
    )
    assert '<html lang="en">' in switched.text and "Expected: in transit" in switched.text
    page = stack.console.get(f"/warehouse/{refund_id}").text
    assert "The carrier&#39;s trail" in page and "Damaged by the customer" in page
