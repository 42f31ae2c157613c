"""Payout against the real sandbox gateway (uvicorn) and PostgreSQL, for the integration
tests test_payout_gateway*.py: the `gateway`, `settings` and `app` fixtures, a `Harness`
running the executor with a fake clock and sleep (so backoff schedules run without real
waiting) and counting the requests that left for the gateway, the review's and intake's
events as delivered messages, and what the payout service stored and published.

A test module imports the fixtures it uses by name (`app` needs `settings`, which needs
`gateway`): `from tests.support.payout_gateway import app_fixture, gateway_fixture,
settings_fixture`."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventsourcing.utils import get_topic

from sandbox.gateway import create_app
from services.payout.adapters import Routes
from services.payout.application import PayoutApplication
from services.payout.domain import Payout
from services.payout.executor import PayoutExecutor, RetryPolicy
from services.payout.providers.gateway import GatewayRoute, SandboxGateway
from services.payout.providers.store_balance import StoreBalanceRoute
from services.payout.publishing import to_integration
from services.payout.settings import PayoutSettings
from shared.contracts import (
    CloudEvent,
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    ReviewApprovedV1,
    envelope,
)
from shared.store import store_env
from tests.support.sandbox_gateway import control, serving

SECRET = "payout-test-callback-secret"


@pytest.fixture(name="gateway")
def gateway_fixture(tmp_path: Path) -> Iterator[httpx.Client]:
    with (
        serving(create_app(tmp_path, callback_secret=SECRET)) as url,
        httpx.Client(base_url=url, timeout=5.0) as client,
    ):
        control(client, timeout_ms=1500)
        yield client


@pytest.fixture(name="settings")
def settings_fixture(
    postgres_url: str, schema_prefix: str, gateway: httpx.Client
) -> PayoutSettings:
    return PayoutSettings(
        database_url=postgres_url,
        database_schema=f"{schema_prefix}_payout",
        gateway_url=str(gateway.base_url),
        gateway_timeout_s=0.5,
        gateway_callback_secret=SECRET,
    )


@pytest.fixture(name="app")
def app_fixture(settings: PayoutSettings) -> Iterator[PayoutApplication]:
    application = PayoutApplication(env=store_env(settings, "payout"))
    yield application
    application.close()


@dataclass
class FakeTime:
    """The executor's clock and sleep: sleeping moves the clock, instantly."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, stop: asyncio.Event, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


@dataclass
class Harness:
    app: PayoutApplication
    routes: Routes
    requests: list[str]  # "POST /v1/refunds/…" and "GET …" as they left for the gateway
    time: FakeTime

    def executor(self, policy: RetryPolicy | None = None) -> PayoutExecutor:
        return PayoutExecutor(
            self.app,
            self.routes,
            policy=policy or RetryPolicy(max_attempts=5, base_delay_s=0.1),
            clock=self.time.clock,
            sleep=self.time.sleep,
        )

    async def execute(self, payout_id: uuid.UUID, policy: RetryPolicy | None = None) -> Payout:
        await self.executor(policy).execute(payout_id, asyncio.Event())
        return self.app.payout(payout_id)

    def posts(self) -> int:
        return sum(1 for r in self.requests if r.startswith("POST"))


@asynccontextmanager
async def harness(
    app: PayoutApplication, settings: PayoutSettings, notify_url: str | None = None
) -> AsyncIterator[Harness]:
    requests: list[str] = []

    async def count(method: str, path: str) -> None:
        requests.append(f"{method} {path}")

    gateway = SandboxGateway(settings.gateway_url, settings.gateway_timeout_s, on_request=count)
    try:
        routes = Routes(GatewayRoute(gateway, notify_url), StoreBalanceRoute(app))
        yield Harness(app, routes, requests, FakeTime())
    finally:
        await gateway.close()


positions = iter(range(1, 1_000_000))


def message(event: IntegrationEvent, *, source: str, event_id: str | None = None) -> CloudEvent:
    return envelope(
        event,
        source=source,
        event_id=event_id or str(uuid.uuid4()),
        position=next(positions),
        time=datetime.now(UTC),
        causation_id=None,
    )


def approval(
    refund_id: str | None = None,
    *,
    method: str = "alipay",
    amount: int = 4200,
    coupon: int | None = None,
    currency: str | None = None,
) -> ReviewApprovedV1:
    return ReviewApprovedV1(
        refund_id=refund_id or f"rf_{uuid.uuid4().hex}",
        tenant="acme",
        order_id="ORD-1",
        amount=MoneyModel(amount=amount, currency="CNY"),
        payment=PaymentRoute(
            method=method,  # type: ignore[arg-type]
            reference="pay_1",
            currency=currency,
        ),
        policy_version="v1",
        rule="auto.small_amount",
        decided_by="policy",
        decided_at=datetime.now(UTC),
        coupon=MoneyModel(amount=coupon, currency="CNY") if coupon else None,
    )


def approve(app: PayoutApplication, event: ReviewApprovedV1) -> uuid.UUID:
    delivered = message(event, source="review")
    assert app.handle(delivered)
    return Payout.create_id(delivered.id)


def stored(app: PayoutApplication, event_class: Any) -> list[Any]:
    notifications = app.recorder.select_notifications(
        start=1, limit=10_000, topics=[get_topic(event_class)]
    )
    return [app.mapper.to_domain_event(n) for n in notifications]


def published(app: PayoutApplication) -> list[IntegrationEvent]:
    notifications = app.recorder.select_notifications(start=1, limit=10_000)
    events = (to_integration(app.mapper.to_domain_event(n)) for n in notifications)
    return [e for e in events if e is not None]
