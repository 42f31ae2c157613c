"""Payout against the real sandbox gateway (uvicorn) and PostgreSQL: the gateway's ledger judges.

No mocks: faults come from the gateway's control switches; only the executor's
sleep and clock are fakes, so that backoff schedules run without real waiting.
"""

from __future__ import annotations

import asyncio
import json
import time
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

from sandbox.gateway import create_app, signature_header
from services.payout.adapters import Routes
from services.payout.application import PayoutApplication
from services.payout.bootstrap import http_api
from services.payout.callbacks import RefusedCallback
from services.payout.credits import Coupon
from services.payout.domain import Payout
from services.payout.executor import PayoutExecutor, RetryPolicy
from services.payout.poller import StatusPoller
from services.payout.providers.gateway import GatewayRoute, SandboxGateway
from services.payout.providers.store_balance import StoreBalanceRoute
from services.payout.publishing import to_integration
from services.payout.reconcile import our_records
from services.payout.settings import CALLBACK_PATH, PayoutSettings
from services.payout.views import payout_view
from shared.contracts import (
    CloudEvent,
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    PayoutFailedV1,
    PayoutSucceededV1,
    RefundWithdrawnV1,
    ReviewApprovedV1,
    ReviewCompensationOfferedV1,
    envelope,
)
from shared.store import store_env
from tests.integration.test_sandbox_gateway import control, ledger_entries, serving

pytestmark = pytest.mark.slow

SECRET = "payout-test-callback-secret"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[httpx.Client]:
    with (
        serving(create_app(tmp_path, callback_secret=SECRET)) as url,
        httpx.Client(base_url=url, timeout=5.0) as client,
    ):
        control(client, timeout_ms=1500)
        yield client


@pytest.fixture
def settings(postgres_url: str, schema_prefix: str, gateway: httpx.Client) -> PayoutSettings:
    return PayoutSettings(
        database_url=postgres_url,
        database_schema=f"{schema_prefix}_payout",
        gateway_url=str(gateway.base_url),
        gateway_timeout_s=0.5,
        gateway_callback_secret=SECRET,
    )


@pytest.fixture
def app(settings: PayoutSettings) -> Iterator[PayoutApplication]:
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

    async def count(request: httpx.Request) -> None:
        requests.append(f"{request.method} {request.url.path}")

    gateway = SandboxGateway(
        settings.gateway_url, settings.gateway_timeout_s, event_hooks={"request": [count]}
    )
    try:
        routes = Routes(GatewayRoute(gateway, notify_url), StoreBalanceRoute(app))
        yield Harness(app, routes, requests, FakeTime())
    finally:
        await gateway.close()


_positions = iter(range(1, 1_000_000))


def message(event: IntegrationEvent, *, source: str, event_id: str | None = None) -> CloudEvent:
    return envelope(
        event,
        source=source,
        event_id=event_id or str(uuid.uuid4()),
        position=next(_positions),
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


# --- exactly once ----------------------------------------------------------------------------


async def test_duplicated_approval_messages_pay_once(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    event = approval()
    first = message(event, source="review")
    republished = first.model_copy(update={"position": next(_positions)})  # same id, new offset
    assert app.handle(first)
    assert not app.handle(first)  # redelivered: tracking drops it
    assert app.handle(republished)  # re-published by a relay: the payout id absorbs it
    assert len(stored(app, Payout.Requested)) == 1  # type: ignore[attr-defined]

    async with harness(app, settings) as h:
        stop = asyncio.Event()
        executor = h.executor()
        task = asyncio.create_task(executor.run(stop))
        payout_id = Payout.create_id(first.id)
        deadline = time.monotonic() + 10
        while app.payout(payout_id).status != "paid":
            assert time.monotonic() < deadline, "payout not settled"
            await asyncio.sleep(0.05)
        # The executor's position is lost (a crash before it was saved): the batch repeats.
        await executor.follower.rewind()
        await asyncio.sleep(0.5)
        stop.set()
        await task
    [entry] = ledger_entries(gateway)
    payout = app.payout(payout_id)
    assert entry["merchant_refund_no"] == payout.merchant_refund_no
    assert entry["provider_reference"] == payout.provider_reference
    assert h.posts() == 1  # the repeat asked first and found it paid


async def test_a_payout_sent_nowhere_yet_goes_out_after_one_thread_hop(
    app: PayoutApplication,
    settings: PayoutSettings,
    gateway: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Loaded, its dispatch recorded and its route found in one hop off the event loop;
    the receipt recorded in a second: each hop costs a thread wake-up or two."""
    payout_id = approve(app, approval())
    hops: list[str] = []
    real = asyncio.to_thread

    async def counted(func: Any, /, *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    async with harness(app, settings) as h:
        monkeypatch.setattr(asyncio, "to_thread", counted)
        paid = await h.execute(payout_id)
        monkeypatch.undo()
    assert paid.status == "paid" and h.posts() == 1
    assert hops == ["_dispatch_first", "record_receipt"]
    assert len(ledger_entries(gateway)) == 1


async def test_timeout_after_the_money_moved_is_resolved_without_paying_twice(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval(method="card"))
    control(gateway, timeout_after_commit_next=1)
    async with harness(app, settings) as h:
        payout = await h.execute(payout_id)
    assert payout.status == "paid"
    [entry] = ledger_entries(gateway)
    assert entry["provider_reference"] == payout.provider_reference
    assert h.posts() == 1 and "GET" in h.requests[-1]  # the retry queried, found it paid
    [succeeded] = [e for e in published(app) if isinstance(e, PayoutSucceededV1)]
    refund = gateway.get(f"/v1/refunds/{payout.merchant_refund_no}").json()
    assert succeeded.expected_arrival.date().isoformat() == refund["arrival"]["latest"]


async def test_crash_between_send_and_record_queries_instead_of_sending(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval(method="wechat_pay"))
    # The first process recorded the dispatch and sent the refund, then died.
    payout = app.record_dispatch(payout_id, datetime.now(UTC))
    before = SandboxGateway(settings.gateway_url)
    await before.refund(
        merchant_refund_no=payout.merchant_refund_no,
        amount=4200,
        currency="CNY",
        method="wechat_pay",
        reference="pay_1",
    )
    await before.close()
    control(gateway, fail_next=1)  # any new POST would use this up

    restarted = PayoutApplication(env=store_env(settings, "payout"))
    try:
        async with harness(restarted, settings) as h:
            assert (await h.execute(payout_id)).status == "paid"
    finally:
        restarted.close()
    assert h.posts() == 0
    assert control(gateway)["fail_next"] == 1
    assert len(ledger_entries(gateway)) == 1


async def test_dispatched_but_never_sent_is_sent_after_the_query(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval())
    app.record_dispatch(payout_id, datetime.now(UTC))  # died before the request left
    async with harness(app, settings) as h:
        assert (await h.execute(payout_id)).status == "paid"
    assert h.requests[0].startswith("GET") and h.posts() == 1
    assert len(ledger_entries(gateway)) == 1


# --- asynchronous completion --------------------------------------------------------------


async def test_lost_callback_is_resolved_by_the_poller(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    control(gateway, async_mode=True, completion_delay_ms=200, drop_callbacks_next=1)
    payout_id = approve(app, approval(method="bank_transfer"))
    async with harness(app, settings, notify_url="http://127.0.0.1:9/nowhere") as h:
        payout = await h.execute(payout_id)
        assert payout.status == "processing"
        poller = StatusPoller(app, h.routes, after_s=0.1, interval_s=0.05)
        deadline = time.monotonic() + 10
        while app.payout(payout_id).status == "processing":
            assert time.monotonic() < deadline, "poller never settled the payout"
            await poller.poll_once()
            await asyncio.sleep(0.1)
    payout = app.payout(payout_id)
    assert payout.status == "paid"
    [entry] = ledger_entries(gateway)
    assert entry["provider_reference"] == payout.provider_reference
    assert gateway.get("/callbacks").json()["callbacks"][0]["state"] == "dropped"


def _signed(
    body: dict[str, Any], secret: str = SECRET, at: int | None = None
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "Gateway-Signature": signature_header(secret, at or int(time.time()), raw),
        "Gateway-Callback-Id": body["id"],
    }
    return raw, headers


async def test_signed_callback_settles_once_forged_and_replayed_ones_are_refused_and_recorded(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    http = http_api(app, settings)
    control(gateway, async_mode=True, completion_delay_ms=200)
    payout_id = approve(app, approval(method="card"))
    with serving(http) as payout_url:
        async with harness(app, settings, notify_url=payout_url + CALLBACK_PATH) as h:
            assert (await h.execute(payout_id)).status == "processing"
            deadline = time.monotonic() + 10
            while app.payout(payout_id).status == "processing":
                assert time.monotonic() < deadline, "callback never settled the payout"
                await asyncio.sleep(0.05)
        # The payout settles while the gateway still awaits our answer to its callback: it
        # records the attempt's outcome once that answer is in.
        deadline = time.monotonic() + 10
        while (callbacks := gateway.get("/callbacks").json()["callbacks"])[0]["state"] == "sending":
            assert time.monotonic() < deadline, "the gateway never learnt our answer"
            await asyncio.sleep(0.05)
        [delivered] = callbacks
        assert delivered["state"] == "delivered"
        payout = app.payout(payout_id)
        assert payout.status == "paid"
        log = app.callback_log(delivered["id"])
        assert log is not None and log.outcome == "paid"

        refund = gateway.get(f"/v1/refunds/{payout.merchant_refund_no}").json()
        callback = {"id": delivered["id"], "type": "refund.success", "data": refund}
        forged = {
            "id": "cb_forged",
            "type": "refund.closed",
            "data": {**refund, "status": "closed"},
        }
        stale_at = int(time.time()) - 3600
        async with httpx.AsyncClient(base_url=payout_url) as client:

            async def post(signed: tuple[bytes, dict[str, str]]) -> httpx.Response:
                return await client.post(CALLBACK_PATH, content=signed[0], headers=signed[1])

            replayed = await post(_signed(callback))
            wrong_key = await post(_signed(forged, "guess"))
            stale = await post(_signed(forged, at=stale_at))
            unsigned = await client.post(CALLBACK_PATH, content=b'{"id":"cb_x"}')
    assert replayed.status_code == 409
    assert replayed.headers["content-type"] == "application/problem+json"
    assert [r.status_code for r in (wrong_key, stale, unsigned)] == [401, 401, 401]
    log = app.callback_log(delivered["id"])
    assert log is not None and log.repeats == 1
    refused = stored(app, RefusedCallback.Refused)  # type: ignore[attr-defined]
    assert [r.callback_id for r in refused] == ["cb_forged", "cb_forged", None]
    assert app.payout(payout_id).status == "paid"
    assert len(ledger_entries(gateway)) == 1


# --- retries, giving up, finance ------------------------------------------------------------


async def test_backoff_honours_retry_after_then_gives_up_and_a_finance_retry_pays(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval())
    control(gateway, fail_next=3, fail_status=429, retry_after_seconds=7)
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.1, max_delay_s=5)
    async with harness(app, settings) as h:
        failed = await h.execute(payout_id, policy)
        assert failed.status == "failed"
        assert h.time.sleeps == [7.0, 7.0]  # Retry-After wins over the shorter backoff
        assert h.posts() == 3
        [gave_up] = [e for e in published(app) if isinstance(e, PayoutFailedV1)]
        assert "gave up after 3 attempts" in gave_up.cause and "429" in gave_up.cause
        assert gave_up.attempts == 3
        assert ledger_entries(gateway) == []

        app.retry_payout(payout_id, actor="finance:mei")
        paid = await h.execute(payout_id, policy)
    assert paid.status == "paid"
    assert paid.merchant_refund_no == failed.merchant_refund_no  # the same number
    [entry] = ledger_entries(gateway)
    assert entry["merchant_refund_no"] == paid.merchant_refund_no
    [succeeded] = [e for e in published(app) if isinstance(e, PayoutSucceededV1)]
    assert succeeded.provider_reference == entry["provider_reference"]


async def test_retry_window_bounds_the_total_time(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval())
    control(gateway, fail_next=50, fail_status=503)
    policy = RetryPolicy(max_attempts=50, window_s=30, base_delay_s=2, max_delay_s=20)
    async with harness(app, settings) as h:
        payout = await h.execute(payout_id, policy)
    assert payout.status == "failed"
    assert sum(h.time.sleeps) <= 30
    assert len(h.time.sleeps) == payout.attempts - 1  # no wait after the last attempt
    assert 3 <= payout.attempts < 10


async def test_permanent_failure_stops_at_once_and_a_retry_takes_a_new_number(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval(method="card"))
    control(gateway, close_next=1)
    async with harness(app, settings) as h:
        failed = await h.execute(payout_id)
        assert failed.status == "failed" and h.posts() == 1 and h.time.sleeps == []
        [event] = [e for e in published(app) if isinstance(e, PayoutFailedV1)]
        assert "ACCOUNT_CLOSED" in event.cause
        app.retry_payout(payout_id, actor="finance:mei")
        paid = await h.execute(payout_id)
    assert paid.status == "paid"
    # The provider keeps the closed refund under the old number: no money moved there.
    assert paid.merchant_refund_no == failed.merchant_refund_no + "-2"
    assert [e["merchant_refund_no"] for e in ledger_entries(gateway)] == [paid.merchant_refund_no]


# --- cross-border: converted at a recorded rate -------------------------------------------------


def _rate_requests(h: Harness) -> int:
    return sum(1 for r in h.requests if r == "GET /v1/fx/rates")


async def test_cross_border_refund_pays_the_converted_amount_at_a_recorded_rate(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    # 121.20 CNY x 0.1375 = 16.665 USD: a tie at the cent, half-even pays 16.66 (not 16.67).
    payout_id = approve(app, approval(method="card", amount=12120, currency="USD"))
    control(gateway, fail_next=2, fail_status=503)
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.1)
    async with harness(app, settings) as h:
        failed = await h.execute(payout_id, policy)
        assert failed.status == "failed" and h.posts() == 2  # a 5xx, retried, then gave up
        app.retry_payout(payout_id, actor="finance:mei")
        paid = await h.execute(payout_id, policy)
        assert _rate_requests(h) == 1  # converted once; every retry reused it
    assert paid.status == "paid"
    record = {
        "source_amount": 12120,
        "source_currency": "CNY",
        "target_amount": 1666,
        "target_currency": "USD",
        "rate": "0.1375",
        "rate_source": "sandbox-fx",
        "rate_at": "2026-01-02T00:00:00+00:00",
        "exact": "16.665000",
        "rounding": "half_even",
    }
    assert paid.conversion == record
    assert len(stored(app, Payout.Converted)) == 1  # type: ignore[attr-defined]
    [entry] = ledger_entries(gateway)
    assert (entry["amount"], entry["currency"]) == (1666, "USD")
    assert entry["merchant_refund_no"] == paid.merchant_refund_no == failed.merchant_refund_no
    [succeeded] = [e for e in published(app) if isinstance(e, PayoutSucceededV1)]
    assert succeeded.amount == MoneyModel(amount=12120, currency="CNY")
    assert succeeded.settlement == MoneyModel(amount=1666, currency="USD")
    assert succeeded.fx == record
    view = payout_view(paid, app.history(payout_id))
    assert view.conversion == record and view.payment_currency == "USD"
    assert view.settlement is not None and view.settlement.amount == 1666
    # Reconciliation compares the provider's lines with what was sent: the USD amount.
    [ours] = our_records(paid)
    assert (ours.amount, ours.currency) == (1666, "USD")


async def test_cross_border_refund_without_a_rate_fails_at_once_and_sends_nothing(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval(method="card", currency="GBP"))
    async with harness(app, settings) as h:
        failed = await h.execute(payout_id)
    assert failed.status == "failed" and h.posts() == 0 and h.time.sleeps == []
    assert failed.conversion is None and not failed.was_sent
    [event] = [e for e in published(app) if isinstance(e, PayoutFailedV1)]
    assert event.cause == "no exchange rate for CNY->GBP at the gateway"
    assert ledger_entries(gateway) == []


async def test_payment_in_the_orders_currency_is_not_converted(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval(method="card", currency="CNY"))
    async with harness(app, settings) as h:
        paid = await h.execute(payout_id)
    assert paid.status == "paid" and paid.conversion is None and _rate_requests(h) == 0
    [entry] = ledger_entries(gateway)
    assert (entry["amount"], entry["currency"]) == (4200, "CNY")
    [succeeded] = [e for e in published(app) if isinstance(e, PayoutSucceededV1)]
    assert succeeded.settlement is None and succeeded.fx is None


# --- store balance, coupons, withdrawals ------------------------------------------------------


async def test_store_balance_is_credited_once_and_never_reaches_the_gateway(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval(method="store_balance"))
    async with harness(app, settings) as h:
        payout = await h.execute(payout_id)
        # A repeat (crash before the follower advanced) settles nothing new.
        await h.execute(payout_id)
        credit = app.store_credit(payout.merchant_refund_no)
        assert credit is not None
        assert payout.status == "paid" and payout.provider_reference == credit.reference
        assert app.credit_store_balance(_order_of(payout)).reference == credit.reference
    assert h.requests == []
    assert len(stored(app, type(credit).Credited)) == 1  # type: ignore[attr-defined]
    assert ledger_entries(gateway) == []


async def test_switch_to_store_balance_after_a_failure_checks_the_gateway_first(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    payout_id = approve(app, approval(method="card"))
    control(gateway, abnormal_next=1)
    async with harness(app, settings) as h:
        assert (await h.execute(payout_id)).status == "failed"
        app.switch_to_store_balance(payout_id, actor="finance:mei", consent_reference="CALL-77")
        payout = await h.execute(payout_id)
    assert payout.status == "paid" and payout.method == "store_balance"
    assert payout.consent_reference == "CALL-77"
    assert "GET" in h.requests[-1]  # asked the gateway about the old number first
    assert app.store_credit(payout.merchant_refund_no) is not None
    [succeeded] = [e for e in published(app) if isinstance(e, PayoutSucceededV1)]
    assert succeeded.method == "store_balance"
    assert ledger_entries(gateway) == []


def _order_of(payout: Payout) -> Any:
    from services.payout.executor import order_of

    return order_of(payout)


def test_coupon_is_issued_once_per_granting_review_event(app: PayoutApplication) -> None:
    approved = message(approval(coupon=500), source="review")
    offer = message(
        ReviewCompensationOfferedV1(
            refund_id=f"rf_{uuid.uuid4().hex}",
            tenant="acme",
            order_id="ORD-2",
            coupon=MoneyModel(amount=800, currency="CNY"),
            note="sorry for the wait",
            offered_by="rev:li",
            offered_at=datetime.now(UTC),
        ),
        source="review",
    )
    for delivered in (approved, offer):
        assert app.handle(delivered)
        assert app.handle(delivered.model_copy(update={"position": next(_positions)}))
    issued = stored(app, Coupon.Issued)  # type: ignore[attr-defined]
    assert sorted(c.value.amount for c in issued) == [500, 800]
    coupon = app.coupon(offer.id)
    assert coupon is not None and coupon.granted_by == "rev:li"


def _withdrawal(refund_id: str) -> CloudEvent:
    return message(
        RefundWithdrawnV1(
            refund_id=refund_id,
            tenant="acme",
            order_id="ORD-1",
            reason="changed my mind",
            actor="customer",
            withdrawn_at=datetime.now(UTC),
        ),
        source="intake",
    )


async def test_withdrawal_before_sending_cancels_and_nothing_is_sent(
    app: PayoutApplication, settings: PayoutSettings, gateway: httpx.Client
) -> None:
    before = approval()
    before_id = approve(app, before)
    assert app.handle(_withdrawal(before.refund_id))
    # The withdrawal may also arrive first (another topic): the approval is then cancelled.
    late = approval()
    assert app.handle(_withdrawal(late.refund_id))
    late_id = approve(app, late)
    # Already sent: the withdrawal changes nothing.
    sent = approval()
    sent_id = approve(app, sent)
    async with harness(app, settings) as h:
        assert (await h.execute(sent_id)).status == "paid"
        assert app.handle(_withdrawal(sent.refund_id))
        for payout_id in (before_id, late_id):
            assert (await h.execute(payout_id)).status == "cancelled"
    assert app.payout(sent_id).status == "paid"
    assert h.posts() == 1
    assert [e["merchant_refund_no"] for e in ledger_entries(gateway)] == [
        app.payout(sent_id).merchant_refund_no
    ]
    assert len(stored(app, Payout.Cancelled)) == 2  # type: ignore[attr-defined]
