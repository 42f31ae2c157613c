"""WeChat Pay callbacks and signatures, cross-checked with the wechatpayv3 SDK (nobody here
wrote it): it accepts what we and the emulator sign, we accept what it signs and encrypts."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3 import utils as sdk

from sandbox.wechatpay import dev_account, dev_keys
from sandbox.wechatpay.protocol import dev_platform, encrypt_resource, signed_headers
from services.payout.providers.base import CallbackRefused
from services.payout.providers.wechatpay import WeChatPayAccount, signing
from services.payout.providers.wechatpay.callbacks import WeChatPayCallbacks

ACCOUNT = WeChatPayAccount(**dev_account("http://127.0.0.1:9"))
REFUND = {
    "mchid": dev_keys.MCHID,
    "transaction_id": "4200000991202103266853086457",
    "out_trade_no": "ORD-1001",
    "refund_id": "50000000382019052709732678859",
    "out_refund_no": "po_" + "a" * 32,
    "refund_status": "SUCCESS",
    "success_time": "2026-11-05T10:00:00+08:00",
    "amount": {"total": 12900, "refund": 11900, "payer_total": 12900, "payer_refund": 11900},
}


def callback(
    refund: dict[str, Any] | None = None, *, key: bytes = dev_keys.APIV3_KEY.encode()
) -> bytes:
    resource = encrypt_resource(key, json.dumps(refund or REFUND).encode(), "refund")
    body = {
        "id": "EV-2018022511223320873",
        "create_time": "2026-11-05T10:00:00+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "REFUND.SUCCESS",
        "summary": "退款成功",
        "resource": resource,
    }
    return json.dumps(body).encode()


def headers_for(body: bytes, **kw: Any) -> dict[str, str]:
    return signed_headers(dev_platform(), body, serial=dev_keys.PLATFORM_PUBLIC_KEY_ID, **kw)


def verifier() -> WeChatPayCallbacks:
    return WeChatPayCallbacks(ACCOUNT)


def test_a_genuine_callback_verifies() -> None:
    body = callback()
    note = verifier().verify(headers_for(body), body, time.time())
    assert note.callback_id == "EV-2018022511223320873"
    assert note.merchant_refund_no == REFUND["out_refund_no"]
    assert (note.receipt.status, note.receipt.amount, note.method) == (
        "success",
        11900,
        "wechat_pay",
    )


def test_the_certificate_serial_names_the_key_too() -> None:
    body = callback()
    headers = signed_headers(dev_platform(), body, serial=dev_keys.PLATFORM_SERIAL_NO.lower())
    assert verifier().verify(headers, body, time.time()).receipt.status == "success"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("forged", "bad-signature"),
        ("signtest", "bad-signature"),
        ("stale", "bad-signature"),
        ("tampered", "bad-signature"),
        ("unknown-serial", "unknown-key"),
        ("wrong-key", "bad-signature"),
        ("wrong-apiv3-key", "undecryptable"),
        ("not-json", "malformed"),
    ],
)
def test_refused_callbacks(change: str, reason: str) -> None:
    body = callback(key=b"x" * 32) if change == "wrong-apiv3-key" else callback()
    if change == "not-json":
        body = b"<xml/>"
    headers = headers_for(body, signtest=change == "signtest")
    now = time.time()
    if change == "forged":
        headers["Wechatpay-Signature"] = headers["Wechatpay-Signature"][:-8] + "AAAAAAA="
    elif change == "stale":
        now += 301
    elif change == "tampered":
        body = body.replace(b"REFUND.SUCCESS", b"REFUND.CLOSED")
    elif change == "unknown-serial":
        headers["Wechatpay-Serial"] = "PUB_KEY_ID_0000000000000000000000000000000000"
    elif change == "wrong-key":
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        message = signing.answer_message(
            headers["Wechatpay-Timestamp"], headers["Wechatpay-Nonce"], body
        )
        headers["Wechatpay-Signature"] = signing.sign(other, message)
    with pytest.raises(CallbackRefused) as refused:
        verifier().verify(headers, body, now)
    assert refused.value.reason == reason


def test_the_sdk_accepts_our_request_signature() -> None:
    body = b'{"out_refund_no":"po_1","amount":{"refund":1,"total":2,"currency":"CNY"}}'
    header = signing.authorization(
        mchid=dev_keys.MCHID,
        serial_no=dev_keys.MERCHANT_SERIAL_NO,
        private_key=ACCOUNT.private_key(),
        method="POST",
        target="/v3/refund/domestic/refunds",
        body=body,
        timestamp="1700000000",
        nonce="ABC123",
    )
    params = dict(p.split("=", 1) for p in header.split(" ", 1)[1].split(","))
    signature = params["signature"].strip('"')
    message = "POST\n/v3/refund/domestic/refunds\n1700000000\nABC123\n" + body.decode() + "\n"
    merchant_public = sdk.load_public_key(
        ACCOUNT.private_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    # The SDK verifies "timestamp\nnonce\nbody\n"; ours covers more lines: feed it ours whole.
    ts, nonce, rest = message.split("\n", 2)
    assert sdk.rsa_verify(ts, nonce, rest[:-1], signature, merchant_public)


def test_we_accept_what_the_sdk_signs() -> None:
    body = '{"out_refund_no":"po_2"}'
    header = sdk.build_authorization(
        "/v3/refund/domestic/refunds",
        "POST",
        dev_keys.MCHID,
        dev_keys.MERCHANT_SERIAL_NO,
        ACCOUNT.private_key(),
        data=body,
        nonce_str="N1",
    )
    from sandbox.wechatpay.protocol import check_authorization, dev_merchant

    merchant = check_authorization(
        header,
        "POST",
        "/v3/refund/domestic/refunds",
        body.encode(),
        {dev_keys.MCHID: dev_merchant()},
        time.time(),
    )
    assert merchant.mchid == dev_keys.MCHID
    ts = header.split('timestamp="')[1].split('"')[0]
    signature = header.split('signature="')[1].split('"')[0]
    message = signing.request_message(
        "POST", "/v3/refund/domestic/refunds", ts, "N1", body.encode()
    )
    assert signing.verify(ACCOUNT.private_key().public_key(), message, signature)


def test_the_sdk_verifies_and_decrypts_the_emulators_callback() -> None:
    body = callback()
    headers = headers_for(body)
    platform_key = sdk.load_public_key(dev_keys.PLATFORM_PUBLIC_KEY)
    assert sdk.rsa_verify(
        headers["Wechatpay-Timestamp"],
        headers["Wechatpay-Nonce"],
        body.decode(),
        headers["Wechatpay-Signature"],
        platform_key,
    )
    resource = json.loads(body)["resource"]
    plain = sdk.aes_decrypt(
        resource["nonce"], resource["ciphertext"], resource["associated_data"], dev_keys.APIV3_KEY
    )
    assert json.loads(plain) == REFUND


def test_we_decrypt_what_the_sdk_encrypts_and_our_sensitive_fields_decrypt_with_the_sdk() -> None:
    from base64 import b64encode

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    # The SDK only decrypts; AESGCM (cryptography) plays WeChat Pay, the SDK checks it first.
    cipher = b64encode(
        AESGCM(dev_keys.APIV3_KEY.encode()).encrypt(b"nonce1234567", b'{"a":1}', b"refund")
    ).decode()
    assert sdk.aes_decrypt("nonce1234567", cipher, "refund", dev_keys.APIV3_KEY) == '{"a":1}'
    assert (
        signing.decrypt_resource(dev_keys.APIV3_KEY.encode(), "nonce1234567", cipher, "refund")
        == b'{"a":1}'
    )
    platform_private = serialization.load_pem_private_key(
        dev_keys.PLATFORM_PRIVATE_KEY.encode(), None
    )
    encrypted = signing.encrypt_sensitive(
        ACCOUNT.platform_keys()[dev_keys.PLATFORM_PUBLIC_KEY_ID], "张三"
    )
    assert sdk.rsa_decrypt(encrypted, platform_private) == "张三"
