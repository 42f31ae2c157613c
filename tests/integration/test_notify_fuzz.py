"""Schemathesis fuzz of notify's whole OpenAPI (tests/support/fuzz.py says how).

Notify has two kinds of callers: the staff delivery log (`/v1/notifications*`) takes a staff
JWT, everything else the platform's API key. The store is seeded first, so operations on an
id meet real objects (webhook endpoints with deliveries, notifications failed or uncertain,
the customer's in-app feed), not only 404. Host names are resolved by a fake resolver: only
`*.example.com` exists (on a public address), so registration works offline and the run never
waits on DNS. The senders, relay, consumer and webhook deliverer do not run.
"""

from __future__ import annotations

import socket
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from schemathesis import Case

from services.notify.application import NotifyApplication
from services.notify.bootstrap import build
from services.notify.messages.domain import Correspondence
from services.notify.settings import NotifySettings
from shared.runtime import Service
from shared.staff_tokens import encode, staff_claims
from tests.support.fuzz import fuzz_api
from tests.support.notify_sender import cloud, new_refund_id, requested

pytestmark = [pytest.mark.slow]

TENANT = "fuzz"
API_KEY = "sk_fuzz_0123456789abcdefghijklmn"
CUSTOMER = "C-42"  # the customer of every seeded refund
TARGET_CASES = 1500  # spread over the operations with inputs to set max_examples
SEEDED_ENDPOINTS = 3  # real webhook endpoints per operation, each with deliveries
SEEDED_REFUNDS = 4  # refunds with notifications (half failed, half uncertain e-mail)
PUBLIC_ADDRESS = "93.184.215.14"


def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
    """Offline DNS: `*.example.com` is one public address; every other name does not exist."""
    if host.lower().rstrip(".").endswith(".example.com"):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC_ADDRESS, port))]
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Service]:
    service = build(
        NotifySettings(
            env="test",
            data_dir=tmp_path,
            relay_enabled=False,
            consumer_enabled=False,
            sender_enabled=False,
            webhook_enabled=False,
            webhook_allow_private=False,
            api_keys=f"{TENANT}:{API_KEY}",
        )
    )
    application(service).webhooks.resolve = resolve
    yield service
    service.close()


def application(service: Service) -> NotifyApplication:
    """The application behind the service (its `close` is the application's)."""
    app = getattr(service.close, "__self__", None)
    assert isinstance(app, NotifyApplication), service.close
    return app


def pick(value: Any) -> int | None:
    """Half the generated values (chosen by value, so runs repeat) become a real object."""
    number = zlib.crc32(repr(value).encode())
    return number // 2 if number % 2 == 0 else None


def bounced(correspondence: Correspondence) -> None:
    correspondence.record_failed(
        step="received", channel="email", cause="550 no such user", failed_at=datetime.now(UTC)
    )


class RealState:
    """What the fuzz tenant really has: notifications and the in-app feed (one set for all
    operations: only resend changes them), and fresh webhook endpoints with deliveries for
    each operation (a delete fuzzed first would otherwise leave the others only 404)."""

    def __init__(self, service: Service) -> None:
        self.app = application(service)
        self.client = TestClient(service.http, headers={"Authorization": f"Bearer {API_KEY}"})
        self.positions = 0
        self.refunds: list[str] = []
        self.notifications: list[tuple[str, str]] = []  # (refund id, notification id)
        for n in range(SEEDED_REFUNDS):
            refund = self.event()
            self.refunds.append(refund)
            cid = Correspondence.create_id(refund)
            if n % 2:
                self.app.messages.start_attempt(cid, "received", "email")
                self.app.update(cid, lambda c: c.mark_uncertain("received", "email"))
            else:
                self.app.update(cid, bounced)
            for entry in self.app.messages.notifications_for(refund):
                self.notifications.append((refund, entry["notification_id"]))
        page = self.client.get(f"/v1/customers/{CUSTOMER}/notifications")
        assert page.status_code == 200, page.text
        self.feed = [item["id"] for item in page.json()["data"]]
        assert self.feed, "no in-app messages in the feed"
        self.endpoints: dict[str, list[str]] = {}
        self.deliveries: dict[str, list[str]] = {}

    def event(self) -> str:
        """A RefundRequested of the fuzz tenant, consumed: notifications and deliveries."""
        refund = new_refund_id()
        self.positions += 1
        message = cloud(
            requested(refund, tenant=TENANT, phone="+8613812345678"), "intake", self.positions
        )
        assert self.app.handle(message)
        return refund

    def endpoints_for(self, label: str) -> list[str]:
        if label not in self.endpoints:
            made = []
            for n in range(SEEDED_ENDPOINTS):
                body = {"url": f"https://hooks{n}.example.com/refunds", "event_types": ["*"]}
                created = self.client.post("/v1/webhook_endpoints", json=body)
                assert created.status_code == 201, created.text
                made.append(created.json()["id"])
            self.event()
            self.event()
            self.endpoints[label] = made
            for endpoint in made:
                listed = self.client.get(f"/v1/webhook_endpoints/{endpoint}/deliveries")
                assert listed.status_code == 200, listed.text
                self.deliveries[endpoint] = [d["id"] for d in listed.json()["data"]]
                assert self.deliveries[endpoint], f"no deliveries for {endpoint}"
        return self.endpoints[label]

    def substitute(self, case: Case) -> None:
        """Put real ids in place of about half the generated ones."""
        label = case.operation.label
        path = case.path_parameters if case.path_parameters is not None else {}
        query = case.query if isinstance(case.query, dict) else {}
        if "endpoint_id" in path and (chosen := pick(path["endpoint_id"])) is not None:
            endpoints = self.endpoints_for(label)
            endpoint = endpoints[chosen % len(endpoints)]
            path["endpoint_id"] = endpoint
            if "delivery_id" in path and (chosen := pick(path["delivery_id"])) is not None:
                deliveries = self.deliveries[endpoint]
                path["delivery_id"] = deliveries[chosen % len(deliveries)]
        if "notification_id" in path and (chosen := pick(path["notification_id"])) is not None:
            refund, notification = self.notifications[chosen % len(self.notifications)]
            path["notification_id"] = notification
            if isinstance(case.body, dict) and "refund_id" in case.body:
                case.body["refund_id"] = refund
        if "customer_id" in path and pick(path["customer_id"]) is not None:
            path["customer_id"] = CUSTOMER
        for name in ("starting_after", "ending_before"):
            if isinstance(query.get(name), str) and (chosen := pick(query[name])) is not None:
                if label.startswith("GET /v1/customers/"):
                    query[name] = self.feed[chosen % len(self.feed)]
                elif label == "GET /v1/webhook_endpoints":
                    endpoints = self.endpoints_for(label)
                    query[name] = endpoints[chosen % len(endpoints)]
                elif label.endswith("/deliveries"):  # any endpoint's: maybe another one's
                    self.endpoints_for(label)
                    deliveries = sorted(d for ds in self.deliveries.values() for d in ds)
                    query[name] = deliveries[chosen % len(deliveries)]
        asked = query.get("refund_id")  # GET /v1/notifications
        if isinstance(asked, str) and (chosen := pick(asked)) is not None:
            query["refund_id"] = self.refunds[chosen % len(self.refunds)]


def test_fuzz_notify_openapi(notify: Service) -> None:
    api_key = f"Bearer {API_KEY}"
    secret = notify.settings.staff_secret()  # type: ignore[attr-defined]
    staff = f"Bearer {encode(staff_claims('fuzz', ['admin', 'auditor'], 600), secret)}"

    def auth(path: str) -> dict[str, str]:
        return {"Authorization": staff if path.startswith("/v1/notifications") else api_key}

    real = RealState(notify)
    fuzz_api(notify.http, target_cases=TARGET_CASES, auth=auth, prepare=real.substitute)
