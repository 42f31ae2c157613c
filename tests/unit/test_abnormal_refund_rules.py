"""The abnormal refund's rules on the aggregate: who may ask, what a late ABNORMAL callback
does, and how failures stored before `provider_status` read today."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import services.payout.upcasting  # noqa: F401  (installs the upcasters)
from services.payout.domain import Payout, PayoutActionRefused
from services.payout.providers.base import ProviderReceipt
from services.payout.settlement import apply_receipt
from shared.money import Money

AT = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
ABNORMAL = ProviderReceipt("503000", None, status="abnormal", failure_reason="x")


def payout(provider: str = "wechatpay", status: str = "abnormal") -> Payout:
    p = Payout(
        approval_id="ap-1",
        refund_id="rf_1",
        tenant="acme",
        amount=Money(100, "CNY"),
        method="wechat_pay",
        payment_reference="ORD123456",
        causation_id="ap-1",
        payment_currency=None,
    )
    p.dispatch(AT, provider)
    receipt = ProviderReceipt("503000", None, status=status, failure_reason="x")
    assert apply_receipt(p, p.number, p.method, receipt, AT) == "failed"
    return p


def test_only_a_wechat_refund_that_ended_abnormal_may_be_rerouted() -> None:
    for refused in (payout(status="closed"), payout(provider="gateway")):
        assert not refused.abnormal_refund_allowed
        with pytest.raises(PayoutActionRefused):
            refused.request_abnormal_refund("zhao", "MERCHANT_BANK_CARD", None, None, AT)
    allowed = payout()
    allowed.request_abnormal_refund("zhao", "USER_BANK_CARD", "ICBC_DEBIT", "****0123", AT)
    assert allowed.status == "processing" and allowed.rerouting
    with pytest.raises(PayoutActionRefused):  # not twice while it is on its way
        allowed.request_abnormal_refund("zhao", "MERCHANT_BANK_CARD", None, None, AT)


def test_a_late_abnormal_callback_is_superseded_but_a_query_fails_it_again() -> None:
    p = payout()
    p.request_abnormal_refund("zhao", "MERCHANT_BANK_CARD", None, None, AT)
    outcome = apply_receipt(p, p.number, p.method, ABNORMAL, AT, callback=True)
    assert outcome == "superseded" and p.status == "processing"
    assert apply_receipt(p, p.number, p.method, ABNORMAL, AT) == "failed"
    assert p.abnormal_refund_allowed


def test_failures_stored_before_provider_status_read_it_from_their_cause() -> None:
    upcast = Payout.Failed.upcast_v2_v3  # type: ignore[attr-defined]
    for cause, final, expected in (
        ("refund abnormal: ABNORMAL: not credited", True, "abnormal"),
        ("refund closed: CLOSED", True, "closed"),
        ("gave up after 5 attempts", False, None),
    ):
        state = {"cause": cause, "provider_final": final}
        upcast(state)
        assert state["provider_status"] == expected
