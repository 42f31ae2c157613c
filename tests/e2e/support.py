"""Drives a running stack over HTTP the way a platform would."""

from __future__ import annotations

import socket
import time
import uuid
from collections import Counter
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx

from sandbox.mailsink import read_mailbox
from shared.auth import DEV_API_KEY
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from tests.support.factories import refund_body

FINAL = {"paid", "rejected", "payout_failed"}
PLATFORM = {"Authorization": f"Bearer {DEV_API_KEY}"}


class Platform:
    def __init__(self, intake_url: str, gateway_url: str, data_dir: Path) -> None:
        self.intake = httpx.Client(
            base_url=intake_url, timeout=10, headers={"Authorization": f"Bearer {DEV_API_KEY}"}
        )
        self.gateway = httpx.Client(base_url=gateway_url, timeout=10)
        self.data_dir = data_dir

    def request_refund(
        self, amount: int, key: str | None = None, body: dict[str, Any] | None = None
    ) -> str:
        """POST a refund, retrying with the same Idempotency-Key while intake is unreachable."""
        key = key or uuid.uuid4().hex
        if body is None:  # each from a new customer: no refund history to raise the risk
            body = refund_body(amount)
            body["order"]["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + 30
        while True:
            try:
                response = self.intake.post(
                    "/v1/refunds", json=body, headers={"Idempotency-Key": key}
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def refund(self, refund_id: str) -> dict[str, Any]:
        response = self.intake.get(f"/v1/refunds/{refund_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_final(self, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        done: dict[str, dict[str, Any]] = {}
        while True:
            for refund_id in ids:
                if refund_id not in done:
                    view = self.refund(refund_id)
                    if view["status"] in FINAL:
                        done[refund_id] = view
            if len(done) == len(ids):
                return done
            if time.monotonic() > deadline:
                waiting = {i: self.refund(i)["status"] for i in ids if i not in done}
                raise AssertionError(
                    f"{len(waiting)} refund(s) not final after {timeout}s: {waiting}"
                )
            time.sleep(0.2)

    def ledger(self) -> list[dict[str, Any]]:
        return list(self.gateway.get("/ledger").json()["entries"])

    def mail(self) -> list[EmailMessage]:
        return read_mailbox(self.data_dir / "mail")

    def close(self) -> None:
        self.intake.close()
        self.gateway.close()


def assert_paid_exactly_once(platform: Platform, finals: dict[str, dict[str, Any]]) -> None:
    """Every paid refund has one ledger entry at the gateway, under its payout's number."""
    ledger = platform.ledger()
    numbers = Counter(entry["merchant_refund_no"] for entry in ledger)
    assert all(count == 1 for count in numbers.values()), f"paid twice: {numbers.most_common(3)}"
    paid = {view["payout"]["payout_id"] for view in finals.values() if view["status"] == "paid"}
    assert set(numbers) == paid, "the gateway ledger and the paid refunds disagree"
    for view in finals.values():
        if view["status"] == "paid":
            entry = next(
                e for e in ledger if e["merchant_refund_no"] == view["payout"]["payout_id"]
            )
            assert entry["amount"] == view["amount"]["amount"]
            assert entry["provider_reference"] == view["payout"]["provider_reference"]


def notify_log(notify_url: str, refund_ids: list[str]) -> list[dict[str, Any]]:
    """Every message notify has for these refunds, as an auditor sees them."""
    claims = staff_claims("e2e.auditor", ["auditor"], 600)
    headers = {"Authorization": f"Bearer {encode(claims, DEV_JWT_SECRET)}"}
    entries: list[dict[str, Any]] = []
    with httpx.Client(base_url=notify_url, timeout=10, headers=headers) as notify:
        for refund_id in refund_ids:
            response = notify.get("/v1/notifications", params={"refund_id": refund_id})
            assert response.status_code == 200, response.text
            entries += response.json()["data"]
    return entries


def register_webhook(notify_url: str, url: str, event_types: list[str]) -> str:
    """A webhook endpoint of the dev tenant; its id."""
    with httpx.Client(base_url=notify_url, timeout=10, headers=PLATFORM) as notify:
        response = notify.post(
            "/v1/webhook_endpoints", json={"url": url, "event_types": event_types}
        )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def webhook_deliveries(notify_url: str, endpoint_id: str) -> list[dict[str, Any]]:
    """Every delivery of one endpoint, following the cursor to the end."""
    found: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    with httpx.Client(base_url=notify_url, timeout=10, headers=PLATFORM) as notify:
        while True:
            page = notify.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries", params=params)
            assert page.status_code == 200, page.text
            found += page.json()["data"]
            if not page.json()["has_more"]:
                return found
            params["starting_after"] = found[-1]["id"]


def assert_one_message_per_step(messages: list[EmailMessage]) -> Counter[str]:
    ids = Counter(str(message["Message-ID"]) for message in messages)
    assert all(count == 1 for count in ids.values()), f"sent twice: {ids.most_common(3)}"
    return ids


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True
