"""The return lifecycle over review's HTTP app, on SQLite and PostgreSQL: Kuaidi100 pushes
(signed, forged, duplicated, out of order), the warehouse's receipt (roles, refusals that
name the field and store nothing, idempotent retries), the warehouse's list (filters,
overdue, due-first, cursors), and the carrier workers against the sandbox carrier."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from services.review.application import ReviewApplication
from services.review.bootstrap import staff_api
from services.review.queue import ReviewQueue
from services.review.returns.carriers import Kuaidi100, md5_upper
from services.review.returns.pushes import CarrierPushes
from services.review.returns.workers import ReturnWatch, carrier_workers, poll_due, subscribe_due
from shared.settings import ServiceSettings
from shared.staff import StaffAuth
from shared.staff_tokens import encode, staff_claims
from shared.store import store_env
from tests.integration.test_review_returns import RETURNS_POLICY, Clock, Desk, item
from tests.integration.test_sandbox_carrier import (
    ACCEPT,
    CUSTOMER,
    KEY,
    WAIT,
    advance,
    carrier,
    new_shipment,
)
from tests.support.receiver import Receiver

SECRET = "review-returns-test-secret-0123456789"
SALT = "review-returns-test-salt"
PUSH = "/v1/carriers/kuaidi100/push"
NUMBER = "SF1234567890123"


def staff(sub: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims(sub, roles, 3600), SECRET)}"}


WAREHOUSE = staff("wh.li", "warehouse")
ADMIN = staff("root", "admin")
AUDITOR = staff("al", "auditor")
REVIEWER = staff("ann", "reviewer")


@dataclass
class Api:
    client: TestClient
    desk: Desk
    pushes: CarrierPushes

    @property
    def app(self) -> ReviewApplication:
        return self.desk.app

    def stored(self) -> int:
        return len(self.app.recorder.select_notifications(start=1, limit=100_000))

    def receipt(
        self, refund_id: str, *lines: dict[str, Any], headers: dict[str, str] = WAREHOUSE
    ) -> httpx.Response:
        return self.client.post(
            f"/v1/returns/{refund_id}/receipt", json={"items": list(lines)}, headers=headers
        )

    def ids(self, **query: Any) -> list[str]:
        response = self.client.get("/v1/returns", params=query, headers=AUDITOR)
        assert response.status_code == 200, response.text
        return [entry["refund_id"] for entry in response.json()["data"]]


@pytest.fixture(params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    options: dict[str, Any] = {}
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        options = {
            "database_url": request.getfixturevalue("postgres_url"),
            "database_schema": f"{prefix}_review",
        }
    settings = ServiceSettings(env="test", data_dir=tmp_path, **options)
    clock = Clock()
    app = ReviewApplication(RETURNS_POLICY, env=store_env(settings, "review"), clock=clock)
    app.record_shipped_policy()
    adapter = Kuaidi100("http://127.0.0.1:9", key=KEY, customer=CUSTOMER, salt=SALT)
    pushes = CarrierPushes(adapter, registry=CollectorRegistry())
    http = staff_api(app, ReviewQueue(app), StaffAuth(SECRET), pushes)
    try:
        with TestClient(http) as client:
            yield Api(client, Desk(app, clock), pushes)
    finally:
        app.close()


def push_form(
    events: list[tuple[str, str, str]],
    state: str,
    *,
    number: str = NUMBER,
    salt: str = SALT,
    status: str = "polling",
) -> dict[str, str]:
    """Kuaidi100's push form: the whole trail (time, context, status), newest first."""
    result = {
        "message": "ok",
        "state": state,
        "status": "200",
        "condition": "F00",
        "ischeck": "1" if state == "3" else "0",
        "com": "shunfeng",
        "nu": number,
        "data": [
            {"context": c, "time": t, "ftime": t, "status": s, "areaName": "上海"}
            for t, c, s in sorted(events, reverse=True)
        ],
    }
    param = json.dumps(
        {
            "status": status,
            "message": "",
            "autoCheck": "0",
            "comOld": "",
            "comNew": "",
            "lastResult": result,
        },
        ensure_ascii=False,
    )
    return {"param": param, "sign": md5_upper(param + salt)}


PICKED = ("2026-11-21 09:00:00", "快件已揽收", "揽收")
MOVING = ("2026-11-21 18:00:00", "快件已到达上海转运中心", "在途")
SIGNED = ("2026-11-22 10:00:00", "快件已签收，签收人：退货组", "签收")


# -- carrier pushes ---------------------------------------------------------------------------


def test_pushes_deliver_once_and_forged_duplicate_or_older_ones_change_nothing(api: Api) -> None:
    refund_id = api.desk.request(("TEE", "apparel", 1, 19900))
    api.desk.ship(refund_id, NUMBER)

    forged = api.client.post(PUSH, data=push_form([PICKED, MOVING, SIGNED], "3", salt="guess"))
    before = api.stored()
    assert forged.status_code == 403, forged.text
    assert forged.json()["errors"][0]["field"] == "sign"
    assert api.stored() == before and api.pushes.seen("forged") == 1
    unsigned = api.client.post(PUSH, data={"param": push_form([PICKED], "1")["param"]})
    assert unsigned.status_code == 403 and api.stored() == before

    moving = api.client.post(PUSH, data=push_form([PICKED, MOVING], "0"))
    assert moving.status_code == 200 and moving.json() == {
        "result": True,
        "returnCode": "200",
        "message": "成功",
    }
    assert api.desk.returned(refund_id).state == "in_transit"
    delivered = push_form([PICKED, MOVING, SIGNED], "3", status="shutdown")
    assert api.client.post(PUSH, data=delivered).status_code == 200
    found = api.desk.returned(refund_id)
    assert found.state == "delivered" and found.receipt_by is not None
    after = api.stored()
    # The same push twice, and the older one arriving late: accepted, nothing stored.
    assert api.client.post(PUSH, data=delivered).status_code == 200
    assert api.client.post(PUSH, data=push_form([PICKED, MOVING], "0")).status_code == 200
    assert api.stored() == after
    assert api.pushes.seen("nothing_new") == 2 and api.pushes.seen("recorded") == 2
    assert api.desk.types(refund_id).count("return.delivered.v1") == 1

    shown = api.client.get(f"/v1/returns/{refund_id}", headers=AUDITOR).json()
    assert shown["tracking_state"] == "delivered" and len(shown["tracking"]) == 3
    assert shown["tracking"][0]["context"].startswith("快件已签收")
    assert "carrier:kuaidi100" in [step["actor"] for step in shown["history"]]


def test_a_push_for_no_return_or_a_malformed_one_is_refused(api: Api) -> None:
    before = api.stored()
    unknown = api.client.post(PUSH, data=push_form([PICKED], "1", number="SF9999999999999"))
    assert unknown.status_code == 404
    form = push_form([PICKED], "1")
    param = form["param"].replace('"status": "polling"', '"status": "lost"')
    malformed = api.client.post(PUSH, data={"param": param, "sign": md5_upper(param + SALT)})
    assert malformed.status_code == 422 and malformed.json()["errors"][0]["field"] == "param"
    assert api.stored() == before


def test_without_a_carrier_pushes_are_refused_and_nothing_tracks(api: Api) -> None:
    http = staff_api(api.app, ReviewQueue(api.app), StaffAuth(SECRET))
    with TestClient(http) as client:
        assert client.post(PUSH, data=push_form([PICKED], "1")).status_code == 404
    assert carrier_workers(api.app, None, callback_url="http://x", poll_interval=1) == {}


# -- the warehouse's receipt ------------------------------------------------------------------


def test_receipt_refusals_name_the_field_and_store_nothing(api: Api) -> None:
    refund_id = api.desk.request(("TEE", "apparel", 2, 9950))
    not_shipped = api.receipt(refund_id, item("TEE", 2))
    assert not_shipped.status_code == 409, not_shipped.text
    assert not_shipped.json()["type"].endswith("/return-not-receivable")
    api.desk.ship(refund_id)
    before = api.stored()
    never = api.receipt(refund_id, item("TEE", 1), item("SOCKS", 1))
    assert never.status_code == 422 and never.json()["errors"][0]["field"] == "items.1.sku"
    above = api.receipt(refund_id, item("TEE", 3))
    assert above.status_code == 422 and above.json()["errors"][0]["field"] == "items.0.quantity"
    photo = api.receipt(refund_id, item("TEE", 2, photos=["http://cdn.example.com/1.jpg"]))
    assert photo.status_code == 422
    assert photo.json()["errors"][0]["field"] == "items.0.photos.0"
    condition = api.receipt(refund_id, item("TEE", 2, condition="smells"))
    assert condition.status_code == 422
    assert condition.json()["errors"][0]["field"] == "items.0.condition"
    nothing = api.receipt(refund_id, item("TEE", 0))
    assert nothing.status_code == 422 and nothing.json()["errors"][0]["field"] == "items"
    assert api.receipt(refund_id, item("TEE", 2), headers=AUDITOR).status_code == 403
    assert api.receipt(refund_id, item("TEE", 2), headers=REVIEWER).status_code == 403
    assert api.client.post(f"/v1/returns/{refund_id}/receipt", json={"items": []}).status_code in (
        401,
        403,
    )
    assert api.stored() == before
    unknown = api.receipt("rf_nope", item("TEE", 1))
    assert unknown.status_code == 404


def test_a_receipt_is_recorded_once_and_pays_once(api: Api) -> None:
    refund_id = api.desk.request(("PHONE", "electronics", 1, 40000))
    api.desk.ship(refund_id)
    keyed = {**WAREHOUSE, "Idempotency-Key": "c0ffee00-0000-4000-8000-000000000001"}
    body = {"items": [item("PHONE", 1, photos=["https://cdn.example.com/wh/1.jpg"])]}
    first = api.client.post(f"/v1/returns/{refund_id}/receipt", json=body, headers=keyed)
    assert first.status_code == 200, first.text
    shown = first.json()
    assert shown["state"] == "paid" and shown["inspection"]["by"] == "wh.li"
    assert shown["inspection"]["lines"][0]["rule"] == "deduction.restocking_electronics"
    assert shown["inspection"]["amount"] == {"amount": 36000, "currency": "CNY"}
    again = api.client.post(f"/v1/returns/{refund_id}/receipt", json=body, headers=keyed)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    twice = api.client.post(f"/v1/returns/{refund_id}/receipt", json=body, headers=WAREHOUSE)
    assert twice.status_code == 409
    paid = [e for e in api.desk.published(refund_id) if e.TYPE == "review.approved.v1"]
    assert len(paid) == 1 and paid[0].amount.amount == 36000  # type: ignore[attr-defined]
    assert api.desk.returned(refund_id).history[-1]["actor"] == "wh.li"


# -- the warehouse's list ---------------------------------------------------------------------


def test_the_list_filters_pages_and_orders_by_due_date(api: Api) -> None:
    desk = api.desk
    waiting = desk.request(("TEE", "apparel", 1, 19900))
    desk.clock.now += timedelta(days=1)
    later = desk.request(("CAP", "apparel", 1, 9900))
    desk.clock.now += timedelta(days=1)
    moving = desk.request(("SHOE", "apparel", 1, 29900))
    desk.ship(moving, NUMBER)
    assert api.ids() == [moving, later, waiting]  # newest first
    assert api.ids(state="awaiting_return") == [later, waiting]
    assert api.ids(carrier="shunfeng") == [moving]
    assert api.ids(order="due") == [waiting, later, moving]  # in transit: no deadline running
    assert api.ids(order="due", limit=1, starting_after=waiting) == [later]
    page = api.client.get("/v1/returns", params={"limit": 2}, headers=WAREHOUSE).json()
    assert page["has_more"] and [e["refund_id"] for e in page["data"]] == [moving, later]
    assert api.ids(starting_after=later) == [waiting]
    assert api.ids(overdue=True) == []
    ship_by = desk.returned(waiting).ship_by
    assert ship_by is not None
    desk.clock.now = ship_by + timedelta(hours=1)  # the first is late; the clock not run yet
    assert api.ids(overdue=True) == [waiting]
    assert api.ids(overdue=False) == [moving, later]
    entry = api.client.get("/v1/returns", params={"overdue": True}, headers=AUDITOR).json()
    assert entry["data"][0]["overdue"] is True and entry["data"][0]["state"] == "awaiting_return"
    bad = api.client.get("/v1/returns", params={"starting_after": "rf_nope"}, headers=AUDITOR)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "query.starting_after"
    assert (
        api.client.get("/v1/returns", params={"state": "lost"}, headers=AUDITOR).status_code == 422
    )
    assert api.client.get("/v1/returns", headers=REVIEWER).status_code == 403
    one = api.client.get(f"/v1/returns/{waiting}", headers=WAREHOUSE).json()
    assert one["rma"].startswith("RMA-") and one["items"][0]["price"]["amount"] == 19900
    assert one["overdue"] is True
    assert api.client.get("/v1/returns/rf_nope", headers=AUDITOR).status_code == 404


# -- the carrier workers, against the sandbox carrier -----------------------------------------


async def test_workers_subscribe_then_pushes_or_the_poll_deliver(api: Api, tmp_path: Path) -> None:
    with carrier(tmp_path / "carrier") as client, Receiver() as receiver:
        receiver.reply = ACCEPT
        pushed_number, polled_number = new_shipment(client), new_shipment(client)
        pushed = api.desk.request(("TEE", "apparel", 1, 19900))
        polled = api.desk.request(("CAP", "apparel", 1, 9900))
        api.desk.ship(pushed, pushed_number)
        api.desk.ship(polled, polled_number)
        adapter = Kuaidi100(str(client.base_url), key=KEY, customer=CUSTOMER, salt=SALT)
        try:
            watch = ReturnWatch(api.app)
            assert await subscribe_due(api.app, adapter, receiver.url, watch) == 2
            assert await subscribe_due(api.app, adapter, receiver.url, watch) == 0  # once
            assert api.desk.returned(pushed).subscribed
            # Pushes of one shipment reach us; the other's are lost (never forwarded).
            advance(client, "shunfeng", pushed_number, to="delivered")
            advance(client, "shunfeng", polled_number, to="delivered")
            received = receiver.wait_for(2, WAIT)
            for request in received:
                form = dict(parse_qsl(request.body.decode()))
                if pushed_number in form["param"]:
                    assert api.client.post(PUSH, data=form).status_code == 200
            assert api.desk.returned(pushed).state == "delivered"
            assert api.desk.returned(polled).state == "in_transit"
            assert await poll_due(api.app, adapter, watch) == 1  # the poll finds the other
            assert api.desk.returned(polled).state == "delivered"
            assert await poll_due(api.app, adapter, watch) == 0  # nothing on its way now
        finally:
            await adapter.close()
    for refund_id in (pushed, polled):
        assert api.desk.types(refund_id).count("return.delivered.v1") == 1
