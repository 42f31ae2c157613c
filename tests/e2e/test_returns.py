"""A return and refund (退货退款) over HTTP on the README's stack: the policy wants the goods
back, the platform posts the shipment, the sandbox carrier pushes its tracking, the warehouse
records the receipt, and only then is the money paid — once."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from refunds.devstack import Ports
from services.review.policy_document import load_policy
from shared import staff_tokens as jwt
from tests.e2e.support import Platform, assert_paid_exactly_once, notify_log
from tests.support.factories import refund_body

pytestmark = [pytest.mark.e2e]

RETURN_POLICY = Path(__file__).parents[2] / "services" / "review" / "example_return_policy.yaml"


def staff(sub: str, *roles: str) -> dict[str, str]:
    token = jwt.encode(jwt.staff_claims(sub, list(roles), 600), jwt.DEV_JWT_SECRET)
    return {"Authorization": f"Bearer {token}"}


def wait_status(platform: Platform, refund_id: str, status: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        view = platform.refund(refund_id)
        if view["status"] == status:
            return view
        if time.monotonic() > deadline:
            raise AssertionError(f"{refund_id} is {view['status']}, not {status}: {view}")
        time.sleep(0.2)


def test_a_no_reason_return_is_paid_once_after_the_warehouse_receives_it(
    refunds_dev: tuple[Platform, subprocess.Popen[str], Ports],
) -> None:
    platform, _, ports = refunds_dev
    review = f"http://127.0.0.1:{ports.review}"
    carrier = httpx.Client(base_url=f"http://127.0.0.1:{ports.carrier}", timeout=10)
    policy = load_policy(RETURN_POLICY).model_dump(mode="json", by_alias=True)
    published = httpx.post(
        f"{review}/v1/policies",
        json=policy,
        headers={**staff("root", "admin"), "Idempotency-Key": "e2e-return-policy"},
        timeout=10,
    )
    assert published.status_code == 201, published.text

    body = refund_body(11900, reason="changed_mind")
    refund_id = platform.request_refund(11900, key="e2e-return", body=body)
    awaiting = wait_status(platform, refund_id, "awaiting_return")
    returned = awaiting["return"]
    assert returned["rma"].startswith("RMA-")
    assert returned["items"] == [
        {"sku": "TSHIRT-L-WHITE", "quantity": 1, "price": {"amount": 11900, "currency": "CNY"}}
    ]
    assert platform.ledger() == []  # nothing paid before the goods are back

    number = carrier.post("/sandbox/shipments", json={"company": "shunfeng"}).json()["number"]
    shipment = {"carrier": "shunfeng", "tracking_number": number.lower()}
    url = f"/v1/refunds/{refund_id}/return-shipment"
    posted = platform.intake.post(url, json=shipment, headers={"Idempotency-Key": "e2e-ship"})
    assert posted.status_code in (200, 201), posted.text
    again = platform.intake.post(url, json=shipment, headers={"Idempotency-Key": "e2e-ship-2"})
    assert again.status_code in (200, 201), again.text
    in_transit = wait_status(platform, refund_id, "return_in_transit")
    assert in_transit["return"]["tracking_number"] == number.upper()

    # Review subscribes the number at the carrier; then the carrier delivers and pushes.
    deadline = time.monotonic() + 30
    while not carrier.get(f"/sandbox/shipments/shunfeng/{number}").json()["subscribed"]:
        assert time.monotonic() < deadline, "review never subscribed the tracking number"
        time.sleep(0.2)
    carrier.post("/sandbox/control", json={"duplicate_push_next": 5}).raise_for_status()
    moved = carrier.post(f"/sandbox/shipments/shunfeng/{number}/advance", json={"to": "delivered"})
    assert moved.status_code == 200, moved.text
    wait_status(platform, refund_id, "return_delivered")

    warehouse = staff("wu", "warehouse")
    listed = httpx.get(
        f"{review}/v1/returns", params={"state": "delivered"}, headers=warehouse, timeout=10
    )
    assert listed.status_code == 200, listed.text
    assert refund_id in [r["refund_id"] for r in listed.json()["data"]]
    receipt = {"items": [{"sku": "TSHIRT-L-WHITE", "quantity": 1, "condition": "as_expected"}]}
    for _ in range(2):  # a double click: one receipt
        answer = httpx.post(
            f"{review}/v1/returns/{refund_id}/receipt",
            json=receipt,
            headers={**warehouse, "Idempotency-Key": "e2e-receipt"},
            timeout=10,
        )
        assert answer.status_code in (200, 201), answer.text

    paid = platform.wait_final([refund_id], timeout=60)[refund_id]
    assert paid["status"] == "paid"
    assert paid["amount"]["amount"] == 11900
    assert paid["return"]["inspection"][0]["condition"] == "as_expected"
    assert paid["return"]["outcome"] == "refund"
    assert_paid_exactly_once(platform, {refund_id: paid})
    assert len(platform.ledger()) == 1
    # The tracking pushes came twice each (the carrier's duplicate switch): one delivery.
    shown = httpx.get(f"{review}/v1/returns/{refund_id}", headers=warehouse, timeout=10)
    assert shown.status_code == 200, shown.text
    assert shown.json()["state"] == "paid", shown.json()

    # The cross-service timeline tells every step of the return, each with its actor.
    story = platform.intake.get(f"/v1/refunds/{refund_id}/events")
    assert story.status_code == 200, story.text
    assert story.json()["incomplete"] == []
    actors = {(e["source"], e["type"]): e["actor"] for e in story.json()["data"]}
    assert actors[("review", "ReturnCase.Requested")].startswith("system:")
    assert actors[("review", "ReturnCase.Shipped")] == "tenant:dev-platform"
    assert actors[("review", "ReturnCase.Delivered")] == "carrier:kuaidi100"
    assert actors[("review", "ReturnCase.Received")] == "staff:wu"
    assert any(source == "payout" for source, _ in actors), sorted(actors)
    types = [e["type"] for e in story.json()["data"] if e["source"] == "review"]
    assert types.index("ReturnCase.Requested") < types.index("ReturnCase.Received")

    # The customer heard about each step once, on each channel.
    expected = {"received", "return_requested", "return_delivered", "return_received", "paid"}
    deadline = time.monotonic() + 30
    while True:
        log = notify_log(f"http://127.0.0.1:{ports.notify}", [refund_id])
        sent = Counter((entry["channel"], entry["step"]) for entry in log)
        steps = {step for _, step in sent}
        if expected <= steps and all(e["status"] == "sent" for e in log):
            break
        assert time.monotonic() < deadline, f"notify's log: {sorted(sent)}"
        time.sleep(0.5)
    assert all(count == 1 for count in sent.values()), sent
    assert {channel for channel, _ in sent} == {"email", "sms", "in_app"}
    for channel in ("email", "sms", "in_app"):
        assert expected <= {step for c, step in sent if c == channel}, (channel, sorted(sent))
