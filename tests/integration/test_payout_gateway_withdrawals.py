"""Payout and a customer's withdrawal, against the real sandbox gateway and PostgreSQL:
withdrawn before sending (or before the approval arrives) cancels and nothing is sent;
withdrawn after sending changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from services.payout.application import PayoutApplication
from services.payout.domain import Payout
from services.payout.settings import PayoutSettings
from shared.contracts import CloudEvent, RefundWithdrawnV1
from tests.support.payout_gateway import (
    app_fixture,  # noqa: F401 (a fixture, used by name)
    approval,
    approve,
    gateway_fixture,  # noqa: F401 (a fixture, used by name)
    harness,
    message,
    settings_fixture,  # noqa: F401 (a fixture, used by name)
    stored,
)
from tests.support.sandbox_gateway import ledger_entries

pytestmark = pytest.mark.slow


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
