"""Payout's credits against the real sandbox gateway and PostgreSQL: a store balance
credited once without reaching the gateway, a switch to store balance after a failure
asking the gateway first, and a coupon issued once per granting review event.

No mocks: faults come from the gateway's control switches; only the executor's
sleep and clock are fakes, so that backoff schedules run without real waiting.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from services.payout.application import PayoutApplication
from services.payout.credits import Coupon
from services.payout.domain import Payout
from services.payout.settings import PayoutSettings
from shared.contracts import MoneyModel, PayoutSucceededV1, ReviewCompensationOfferedV1
from tests.support.payout_gateway import (
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approval,
    approve,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    harness,
    message,
    positions,
    published,
    settings_fixture,  # noqa: F401 (a fixture, used by name)
    stored,
)
from tests.support.sandbox_gateway import control, ledger_entries

pytestmark = pytest.mark.slow


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
        assert app.handle(delivered.model_copy(update={"position": next(positions)}))
    issued = stored(app, Coupon.Issued)  # type: ignore[attr-defined]
    assert sorted(c.value.amount for c in issued) == [500, 800]
    coupon = app.coupon(offer.id)
    assert coupon is not None and coupon.granted_by == "rev:li"
