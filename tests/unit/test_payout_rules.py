"""Payout's finance actions, withdrawal, backoff policy, settings and published shape, in memory."""

from __future__ import annotations

import base64
import random
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from services.payout.domain import (
    Payout,
    PayoutActionRefused,
    PayoutAlreadySettled,
    payout_id_of,
)
from services.payout.executor import RetryPolicy
from services.payout.fx import Rate, convert
from services.payout.providers.base import ProviderReceipt
from services.payout.publishing import to_integration
from services.payout.settings import PayoutSettings
from services.payout.settlement import apply_receipt
from shared.contracts import PayoutSucceededV1
from shared.money import Money

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # a Friday


def payout(method: str = "card", currency: str | None = None) -> Payout:
    return Payout(
        approval_id="ap-1",
        refund_id="rf_1",
        tenant="t",
        amount=Money(100, "CNY"),
        method=method,
        payment_reference="r",
        causation_id="ap-1",
        payment_currency=currency,
    )


def receipt(status: str, amount: int = 100, **extra: object) -> ProviderReceipt:
    return ProviderReceipt(
        provider_reference="gw_1",
        executed_at=NOW if status == "success" else None,
        status=status,
        failure_reason="ACCOUNT_CLOSED" if status == "closed" else None,
        amount=amount,
        currency="CNY",
        **extra,  # type: ignore[arg-type]
    )


def test_the_number_leads_back_to_the_payout() -> None:
    p = payout()
    assert payout_id_of(p.merchant_refund_no) == p.id
    assert payout_id_of(p.merchant_refund_no + "-2") == p.id
    assert payout_id_of("RF-0001") is None


def test_finance_actions_need_a_failed_payout() -> None:
    p = payout()
    for action in (
        lambda: p.retry("fin", NOW),
        lambda: p.switch_to_store_balance("fin", "CALL-1", NOW),
        lambda: p.record_manual_payment("fin", "BANK-1", NOW),
    ):
        with pytest.raises(PayoutActionRefused):
            action()


def test_retry_keeps_the_number_unless_the_provider_closed_it() -> None:
    p = payout()
    p.dispatch(NOW)
    p.record_failed_attempt("503", NOW)
    p.fail("gave up", NOW)
    p.retry("finance:mei", NOW)
    assert p.status == "pending" and p.attempts == 0 and p.series == 2
    assert p.merchant_refund_no == p.number == f"po_{p.id.hex}"
    p.dispatch(NOW)
    p.fail("refund closed", NOW, final=True)
    p.retry("finance:mei", NOW)
    assert p.merchant_refund_no == f"po_{p.id.hex}-3"
    assert [a["actor"] for a in p.actions] == ["finance:mei", "finance:mei"]


def test_switch_to_store_balance_needs_consent() -> None:
    p = payout()
    p.fail("closed", NOW, final=True)
    with pytest.raises(PayoutActionRefused):
        p.switch_to_store_balance("fin", " ", NOW)
    p.switch_to_store_balance("fin", "CALL-1", NOW)
    assert p.method == "store_balance" and p.original_method == "card"
    assert p.consent_reference == "CALL-1" and p.status == "pending"


def test_manual_payment_publishes_a_success_with_its_reference() -> None:
    p = payout()
    p.fail("closed", NOW, final=True)
    p.record_manual_payment("finance:mei", "BANK-2026-1", NOW)
    assert p.status == "paid"
    event = to_integration(p.collect_events()[-1])
    assert isinstance(event, PayoutSucceededV1)
    assert event.provider_reference == "BANK-2026-1"
    with pytest.raises(PayoutActionRefused):
        p.record_manual_payment("finance:mei", "again", NOW)


def test_withdrawal_cancels_only_what_was_not_sent() -> None:
    unsent = payout()
    assert unsent.cancel("withdrawn", "customer", NOW)
    assert unsent.status == "cancelled"
    with pytest.raises(PayoutAlreadySettled):
        unsent.dispatch(NOW)
    sent = payout()
    sent.dispatch(NOW)
    assert not sent.cancel("withdrawn", "customer", NOW)
    assert sent.status == "pending"


def test_receipts_settle_by_status() -> None:
    p = payout()
    p.dispatch(NOW)
    assert apply_receipt(p, p.number, "card", receipt("processing"), NOW) == "processing"
    assert p.status == "processing"
    assert apply_receipt(p, p.number, "card", receipt("success", 999), NOW) == "amount_mismatch"
    assert apply_receipt(p, "po_other", "card", receipt("success"), NOW) == "unknown_number"
    arrival = receipt("success", arrival_latest=date(2026, 11, 25))
    assert apply_receipt(p, p.number, "card", arrival, NOW) == "paid"
    assert p.result and p.result["expected_arrival"] == datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert apply_receipt(p, p.number, "card", receipt("closed"), NOW) == "already_settled"

    closed = payout()
    closed.dispatch(NOW)
    assert apply_receipt(closed, closed.number, "card", receipt("closed"), NOW) == "failed"
    assert closed.last_failure_final


def test_success_under_an_earlier_route_is_the_payment() -> None:
    p = payout()
    p.dispatch(NOW)
    p.fail("gave up", NOW)
    p.switch_to_store_balance("fin", "CALL-1", NOW)
    assert apply_receipt(p, p.number, "card", receipt("closed"), NOW) == "stale_number"
    assert apply_receipt(p, p.number, "card", receipt("success"), NOW) == "paid"
    event = to_integration(p.collect_events()[-1])
    assert isinstance(event, PayoutSucceededV1) and event.method == "card"


def test_backoff_grows_with_jitter_and_never_undercuts_retry_after() -> None:
    policy = RetryPolicy(base_delay_s=1, max_delay_s=8)
    rng = random.Random(7)
    delays = [policy.delay(n, None, rng) for n in range(1, 7)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(8, 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert policy.delay(1, 30, rng) == 30
    assert policy.delay(6, 0.5, rng) >= 4


AUDIT_KEY = base64.b64encode(bytes(range(32))).decode()
MASTER_KEY = base64.b64encode(bytes(range(32, 64))).decode()  # payout seals provider accounts


def test_settings_refuse_the_dev_callback_secret_in_production() -> None:
    assert PayoutSettings(port=8123).notify_url == "http://127.0.0.1:8123/v1/gateway/callbacks"
    public = PayoutSettings(public_url="https://payout.example.com/")
    assert public.notify_url == "https://payout.example.com/v1/gateway/callbacks"
    staff = "a-real-staff-token-secret-0123456789abcdef"
    key, master = AUDIT_KEY, MASTER_KEY
    with pytest.raises(ValueError, match="GATEWAY_CALLBACK_SECRET"):
        PayoutSettings(
            env="production", jwt_secret=staff, audit_signing_key=key, keystore_master_key=master
        )
    with pytest.raises(ValueError, match="GATEWAY_CALLBACK_SECRET"):
        PayoutSettings(
            env="production",
            gateway_callback_secret="changeme",
            jwt_secret=staff,
            audit_signing_key=key,
            keystore_master_key=master,
        )
    PayoutSettings(
        env="production",
        gateway_callback_secret="a-real-secret-3f9c",
        jwt_secret=staff,
        audit_signing_key=key,
        keystore_master_key=master,
    )


def test_a_cross_border_payout_converts_once_and_only_on_the_gateway() -> None:
    rate = Rate("CNY", "USD", Decimal("0.1375"), "sandbox-fx", NOW)
    p = payout(currency="USD")
    assert p.needs_conversion and p.settlement is None
    with pytest.raises(ValueError, match="not of"):
        p.convert(convert(Money(999, "CNY"), rate).as_record())
    p.convert(convert(Money(100, "CNY"), rate).as_record())  # 0.1375 USD: 14 cents
    p.convert(convert(Money(100, "CNY"), replace(rate, rate=Decimal("0.2"))).as_record())
    assert not p.needs_conversion
    assert p.amount_on("card") == Money(14, "USD")  # the first conversion stays
    assert p.amount_on("store_balance") == Money(100, "CNY")
    assert not payout(currency="CNY").needs_conversion
    assert not payout("store_balance", currency="USD").needs_conversion
    # A receipt in the order's currency is not what was sent.
    assert apply_receipt(p, p.number, "card", receipt("success"), NOW) == "amount_mismatch"
    settled = apply_receipt(
        p, p.number, "card", replace(receipt("success", 14), currency="USD"), NOW
    )
    assert settled == "paid"
