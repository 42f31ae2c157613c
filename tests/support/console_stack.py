"""The staff console over all four services, in-process: the sandbox identity provider (served
by uvicorn), intake, review, payout and notify built by their own composition roots over
SQLite stores (no broker: relay and consumer off), and the console reaching each through an
ASGI transport. Staff sign in through the provider's own form (tests/integration/
test_console.py's `sign_in`); the services trust the provider's tokens."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient

from services.console.bootstrap import console_app
from services.console.sessions import SqliteSessions
from services.console.settings import ConsoleSettings
from services.intake.bootstrap import build as build_intake
from services.intake.settings import IntakeSettings
from services.notify.bootstrap import build as build_notify
from services.notify.settings import NotifySettings
from services.payout.bootstrap import build as build_payout
from services.payout.settings import PayoutSettings
from services.review.bootstrap import build as build_review
from services.review.settings import ReviewSettings
from shared.contracts import (
    CustomerContact,
    MoneyModel,
    OrderLine,
    PaymentRoute,
    RefundedItem,
    RefundRequestedV1,
    envelope,
)
from shared.runtime import Service
from shared.staff_tokens import encode, staff_claims
from tests.integration.test_console import CONSOLE_URL, sign_in
from tests.support.factories import refund_body
from tests.support.identity import serve_identity

ACME_KEY = "acme-console-key-0123456789abcdef"
ACME = {"Authorization": f"Bearer {ACME_KEY}"}


@dataclass
class Stack:
    issuer: str
    services: dict[str, Service]
    clients: dict[str, TestClient]
    console: TestClient

    def browser(self, username: str, start: str) -> TestClient:
        """A browser on the console with `username` signed in (password `demo`)."""
        browser = TestClient(self.console.app, base_url=CONSOLE_URL)
        sign_in(browser, self.issuer, username, start=start)
        return browser

    def staff(self, service: str, *roles: str) -> dict[str, str]:
        """A service's own staff token (its shared secret), for arranging and checking."""
        secret = self.services[service].settings.staff_secret()  # type: ignore[attr-defined]
        return {"Authorization": f"Bearer {encode(staff_claims('al', roles, 600), secret)}"}

    def refund(self, amount: int = 12900) -> dict[str, Any]:
        """A refund requested at intake by the acme platform, also opened as a case at review
        from intake's own stored event (as the broker would carry it)."""
        created = self.clients["intake"].post(
            "/v1/refunds",
            json=refund_body(amount),
            headers={**ACME, "Idempotency-Key": str(uuid.uuid4())},
        )
        assert created.status_code == 201, created.text
        refund: dict[str, Any] = created.json()
        entries = self.clients["intake"].get(
            f"/v1/audit/refunds/{refund['id']}", headers=self.staff("intake", "auditor")
        )
        assert entries.status_code == 200, entries.text
        requested = entries.json()["data"][0]
        now = datetime.now(UTC)
        money = MoneyModel.model_validate(refund["amount"])
        message = envelope(
            RefundRequestedV1(
                refund_id=refund["id"],
                tenant="acme",
                order_id=refund["order_id"],
                customer_id="C-42",
                amount=money,
                paid=money,
                payment=PaymentRoute(method="alipay", reference="2026110122001"),
                items=[RefundedItem(sku="TSHIRT-L-WHITE", quantity=1)],
                reason="damaged",
                desired_outcome="full_refund",
                channel="app",
                customer=CustomerContact(email="li.wei@example.com"),
                requested_at=now,
                paid_at=now - timedelta(days=4),
                delivered_at=now - timedelta(days=2),
                order_lines=[
                    OrderLine(
                        sku="TSHIRT-L-WHITE", category="apparel", quantity=1, unit_price=money
                    )
                ],
                evidence=[],
            ),
            source="intake",
            event_id=requested["event_id"],
            position=requested["position"],
            time=now,
            causation_id=requested["causation_id"],
        )
        assert self.services["review"].http.state.review.handle(message)
        return refund


def _down(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("down for this test", request=request)


@contextmanager
def console_stack(tmp_path: Path, down: frozenset[str] = frozenset()) -> Iterator[Stack]:
    """The stack; the services named in `down` do not answer the console."""
    with serve_identity(tmp_path / "idp") as issuer, ExitStack() as stack:
        common: dict[str, Any] = {
            "env": "test",
            "data_dir": tmp_path,
            "relay_enabled": False,
            "consumer_enabled": False,
            "oidc_issuer": issuer,
        }
        services = {
            "intake": build_intake(IntakeSettings(**common, api_keys=f"acme:{ACME_KEY}")),
            "review": build_review(ReviewSettings(**common)),
            "payout": build_payout(PayoutSettings(**common)),
            "notify": build_notify(NotifySettings(**common)),
        }
        for service in services.values():
            stack.callback(service.close)
        console = console_app(
            ConsoleSettings(
                env="test", data_dir=tmp_path, oidc_issuer=issuer, console_url=CONSOLE_URL
            ),
            SqliteSessions(tmp_path / "console.sqlite", "console-test-session-secret"),
            transports={
                name: httpx.MockTransport(_down)
                if name in down
                else httpx.ASGITransport(app=service.http)
                for name, service in services.items()
            },
        )
        clients = {
            name: stack.enter_context(TestClient(service.http))
            for name, service in services.items()
        }
        browser = stack.enter_context(TestClient(console, base_url=CONSOLE_URL))
        yield Stack(issuer, services, clients, browser)


def hidden(page: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to `action` (CSRF token, Idempotency-Key, …)."""
    start = page.index(f'action="{action}"')
    form = page[start : page.index("</form>", start)]
    return dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', form))
