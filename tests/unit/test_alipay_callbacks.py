"""Alipay notification verification, and our RSA2 checked against python-alipay-sdk (an
implementation nobody here wrote): it verifies what we sign, we verify what it signs."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from alipay import AliPay

from sandbox.alipay import dev_keys
from services.payout.providers.alipay import AlipayAccount, AlipayCallbacks
from services.payout.providers.alipay.signing import content_to_sign, load_private_key, sign
from services.payout.providers.base import CallbackRefused

BEIJING = timezone(timedelta(hours=8))
NOW = 1_767_000_000.0
HEADERS = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}


def account() -> AlipayAccount:
    return AlipayAccount(**dev_keys.dev_account("http://127.0.0.1:9"))


def sdk_as(private_pem: str, public_pem: str) -> AliPay:
    return AliPay(
        appid=dev_keys.DEV_APP_ID,
        app_private_key_string=private_pem,
        alipay_public_key_string=public_pem,
        sign_type="RSA2",
    )


def notification_params(at: float = NOW, **overrides: str) -> dict[str, str]:
    params = {
        "notify_time": datetime.fromtimestamp(at, BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
        "notify_type": "trade_status_sync",
        "notify_id": "2c5b9f0e7a1d4c3b8e6f2a0d9c1b7e5f",
        "app_id": dev_keys.DEV_APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2026010122001400001234567890",
        "out_trade_no": "order-42",
        "out_biz_no": "po_" + "a" * 32,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": "100.00",
        "refund_fee": "12.34",
        "gmt_refund": "2026-01-01 10:00:00.250",
        "subject": "退款 & 测试",
    }
    params.update(overrides)
    return params


def signed_body(params: dict[str, str], private_pem: str = dev_keys.ALIPAY_PRIVATE_KEY) -> bytes:
    """The form Alipay POSTs, signed by the SDK with `private_pem` (sign_type not signed)."""
    sdk = sdk_as(private_pem, dev_keys.ALIPAY_PUBLIC_KEY)
    return (sdk.sign_data(dict(params)) + "&sign_type=RSA2").encode()


def verify(body: bytes, now: float = NOW) -> Any:
    return AlipayCallbacks(account()).verify(HEADERS, body, now)


def refusal(body: bytes, now: float = NOW) -> str:
    with pytest.raises(CallbackRefused) as caught:
        verify(body, now)
    return caught.value.reason


def test_genuine_notification_signed_by_the_sdk_verifies() -> None:
    found = verify(signed_body(notification_params()))
    assert found.callback_id == "2c5b9f0e7a1d4c3b8e6f2a0d9c1b7e5f"
    assert found.merchant_refund_no == "po_" + "a" * 32
    assert found.method == "alipay" and found.type == "refund.success"
    assert found.receipt.status == "success"
    assert found.receipt.provider_reference == "2026010122001400001234567890"
    assert found.receipt.executed_at == datetime(2026, 1, 1, 2, 0, 0, 250000, tzinfo=UTC)


def test_forged_signature_is_refused() -> None:
    body = signed_body(notification_params()).decode()
    params = dict(parse_qsl(body))
    params["sign"] = base64.b64encode(b"\x01" * 256).decode()
    assert refusal(urlencode(params).encode()) == "bad-signature"


def test_stale_notification_is_refused_as_a_replay() -> None:
    body = signed_body(notification_params(at=NOW - 301))
    assert refusal(body) == "bad-signature"
    assert verify(signed_body(notification_params(at=NOW - 299))).callback_id


def test_notification_signed_with_another_key_is_refused() -> None:
    body = signed_body(notification_params(), private_pem=dev_keys.APP_PRIVATE_KEY)
    assert refusal(body) == "bad-signature"


def test_notification_for_another_app_names_an_unknown_key() -> None:
    body = signed_body(notification_params(app_id="2021000000009999"))
    assert refusal(body) == "unknown-key"


def test_tampered_body_is_refused() -> None:
    body = signed_body(notification_params())
    tampered = body.replace(b"refund_fee=12.34", b"refund_fee=99.99")
    assert tampered != body
    assert refusal(tampered) == "bad-signature"


def test_signed_notification_without_a_refund_number_is_malformed() -> None:
    params = notification_params()
    del params["out_biz_no"]  # a payment's notification, not a refund's
    assert refusal(signed_body(params)) == "malformed"


@pytest.mark.parametrize("body", [b"\xff\xfe", b"{}", b"a=1&a=2&sign=x"])
def test_body_that_is_no_form_is_malformed(body: bytes) -> None:
    assert refusal(body) in {"malformed", "bad-signature"}
    if body != b"a=1&a=2&sign=x":
        assert refusal(body) == "malformed"


def test_sdk_verifies_the_requests_we_sign() -> None:
    params = {
        "app_id": dev_keys.DEV_APP_ID,
        "method": "alipay.trade.refund",
        "format": "JSON",
        "charset": "utf-8",
        "sign_type": "RSA2",
        "timestamp": "2026-01-01 10:00:00",
        "version": "1.0",
        "biz_content": '{"out_trade_no":"order-42","refund_amount":"12.34","out_request_no":"退1"}',
    }
    signature = sign(load_private_key(dev_keys.APP_PRIVATE_KEY), content_to_sign(params))
    checker = sdk_as(dev_keys.APP_PRIVATE_KEY, dev_keys.APP_PUBLIC_KEY)
    # The SDK's verify drops sign_type; requests sign it, so check the whole string instead.
    assert checker._verify(content_to_sign(params), signature)
    assert not checker._verify(content_to_sign({**params, "version": "1.1"}), signature)
    # And the same signature as the SDK computes it: PKCS#1 v1.5 is deterministic.
    assert (
        sdk_as(dev_keys.APP_PRIVATE_KEY, dev_keys.APP_PUBLIC_KEY)._sign(content_to_sign(params))
        == signature
    )


def test_now_defaults_to_the_clock() -> None:
    body = signed_body(notification_params(at=time.time()))
    assert AlipayCallbacks(account()).verify(HEADERS, body).callback_id
