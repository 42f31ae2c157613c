"""Review's staff API served in-process over SQLite and PostgreSQL, for the integration tests
(test_review_api*.py, test_review_claims.py, and the console tests that drive review): staff
tokens for each role, a stopped `Clock`, the `Review` world that delivers refund requests and
calls the API, its `review` fixture (on both stores) and the problem+json check.

A test module imports the fixture by name: `from tests.support.review_api import review_fixture`.
tests/integration/test_review_api.py re-exports the names other modules import from it."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.review.application import ReviewApplication
from services.review.bootstrap import staff_api
from services.review.domain import ReviewCase
from services.review.policy_document import default_policy
from services.review.queue import ReviewQueue
from shared.contracts import (
    CustomerContact,
    EvidenceRecord,
    IntegrationEvent,
    MoneyModel,
    OrderLine,
    PaymentRoute,
    RefundedItem,
    RefundRequestedV1,
    envelope,
)
from shared.ids import public_id
from shared.settings import ServiceSettings
from shared.staff import StaffAuth
from shared.staff_tokens import encode, staff_claims
from shared.store import store_env

SECRET = "review-api-test-secret-0123456789"
START = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)  # a Friday, 10:00 in Shanghai
_positions = itertools.count(1)


def staff(sub: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims(sub, roles, 3600), SECRET)}"}


ANN = staff("ann", "reviewer")
BOB = staff("bob", "reviewer")
WANG = staff("wang", "senior_reviewer")
AUDITOR = staff("al", "auditor")
ADMIN = staff("root", "admin")
FIN = staff("zhao", "finance")


def key(headers: dict[str, str], idempotency_key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": idempotency_key}


@dataclass
class Clock:
    now: datetime = START

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Review:
    client: TestClient
    app: ReviewApplication
    queue: ReviewQueue
    clock: Clock
    opened: list[str] = field(default_factory=list)

    def deliver(self, event: IntegrationEvent) -> None:
        message = envelope(
            event,
            source="intake",
            event_id=str(uuid.uuid4()),
            position=next(_positions),
            time=self.clock.now,
            causation_id=None,
        )
        assert self.app.handle(message)

    def request(self, yuan: int, reason: str = "damaged", outcome: str = "full_refund") -> str:
        """A refund request of `yuan` for a whole one-item order; returns the refund id.

        Over 500.00 the default policy sends it to a person (tier by amount: 2000.00
        important, 10000.00 major); each comes a minute after the previous one."""
        self.clock.now += timedelta(minutes=1)
        now = self.clock.now
        refund_id = public_id("rf", uuid.uuid4())
        money = MoneyModel(amount=yuan * 100, currency="CNY")
        self.deliver(
            RefundRequestedV1(
                refund_id=refund_id,
                tenant="acme",
                order_id=f"ORD-{uuid.uuid4().hex[:8]}",
                customer_id=f"C-{uuid.uuid4().hex[:8]}",
                amount=money,
                paid=money,
                payment=PaymentRoute(method="alipay", reference="2026110122001"),
                items=[RefundedItem(sku="TV-55", quantity=1)],
                reason=reason,
                desired_outcome=outcome,
                channel="app",
                customer=CustomerContact(email="li.wei@example.com"),
                requested_at=now,
                paid_at=now - timedelta(days=4),
                delivered_at=now - timedelta(days=2),
                order_lines=[
                    OrderLine(sku="TV-55", category="electronics", quantity=1, unit_price=money)
                ],
                evidence=[EvidenceRecord(kind="photo", url="https://cdn.example.com/1.jpg")],
            )
        )
        self.opened.append(refund_id)
        return refund_id

    def case(self, refund_id: str, headers: dict[str, str] = AUDITOR) -> dict[str, Any]:
        response = self.client.get(f"/v1/cases/{refund_id}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def post(
        self, refund_id: str, action: str, headers: dict[str, str], body: Any = None
    ) -> httpx.Response:
        return self.client.post(f"/v1/cases/{refund_id}/{action}", json=body, headers=headers)

    def approve(self, refund_id: str, headers: dict[str, str], yuan: int) -> httpx.Response:
        return self.post(
            refund_id, "approve", headers, {"amount": {"amount": yuan * 100, "currency": "CNY"}}
        )

    def settle(
        self, refund_id: str, party: str, action: str, headers: dict[str, str], body: Any
    ) -> httpx.Response:
        """Recover or write off a recovery claim."""
        path = f"/v1/cases/{refund_id}/claims/{party}/{action}"
        return self.client.post(path, json=body, headers=headers)

    def stored(self, refund_id: str, name: str) -> int:
        """How many events called `name` the case has stored."""
        events = self.app.repository.event_store.get(ReviewCase.create_id(refund_id))
        return sum(type(e).__name__ == name for e in events)

    def ids(self, **query: Any) -> list[str]:
        response = self.client.get("/v1/cases", params=query, headers=AUDITOR)
        assert response.status_code == 200, response.text
        return [entry["refund_id"] for entry in response.json()["data"]]


@pytest.fixture(name="review", params=["sqlite", "postgres"])
def review_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Review]:
    options: dict[str, Any] = {}
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        options = {
            "database_url": request.getfixturevalue("postgres_url"),
            "database_schema": f"{prefix}_review",
        }
    settings = ServiceSettings(env="test", data_dir=tmp_path, **options)
    clock = Clock()
    app = ReviewApplication(default_policy(), env=store_env(settings, "review"), clock=clock)
    app.record_shipped_policy()
    queue = ReviewQueue(app)
    http = staff_api(app, queue, StaffAuth(SECRET))
    try:
        with TestClient(http) as client:
            yield Review(client, app, queue, clock)
    finally:
        app.close()


def problem(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["type"].endswith(f"/{kind}"), body
    return body
