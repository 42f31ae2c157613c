"""Payout's retries against the real sandbox gateway and PostgreSQL: backoff honouring
Retry-After, giving up within the attempts and the window, a permanent failure stopping
at once, and a finance retry paying under the same or a new number.

No mocks: faults come from the gateway's control switches; only the executor's
sleep and clock are fakes, so that backoff schedules run without real waiting.
"""

from __future__ import annotations

import httpx
import pytest

from services.payout.application import PayoutApplication
from services.payout.executor import RetryPolicy
from services.payout.settings import PayoutSettings
from shared.contracts import PayoutFailedV1, PayoutSucceededV1
from tests.support.payout_gateway import (
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approval,
    approve,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    harness,
    published,
    settings_fixture,  # noqa: F401 (a fixture, used by name)
)
from tests.support.sandbox_gateway import control, ledger_entries

pytestmark = pytest.mark.slow


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
