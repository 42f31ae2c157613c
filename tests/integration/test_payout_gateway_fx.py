"""Payout's cross-border refunds against the real sandbox gateway and PostgreSQL: the
amount converted once at a recorded rate and reused by every retry, no rate failing at
once with nothing sent, and a payment in the order's currency not converted.

No mocks: faults come from the gateway's control switches; only the executor's
sleep and clock are fakes, so that backoff schedules run without real waiting.
"""

from __future__ import annotations

import httpx
import pytest

from services.payout.application import PayoutApplication
from services.payout.domain import Payout
from services.payout.executor import RetryPolicy
from services.payout.reconcile import our_records
from services.payout.settings import PayoutSettings
from services.payout.views import payout_view
from shared.contracts import MoneyModel, PayoutFailedV1, PayoutSucceededV1
from tests.support.payout_gateway import (
    Harness,
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approval,
    approve,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    harness,
    published,
    settings_fixture,  # noqa: F401 (a fixture, used by name)
    stored,
)
from tests.support.sandbox_gateway import control, ledger_entries

pytestmark = pytest.mark.slow


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
