"""WeChat Pay's refund notifications: signed with its key, the refund encrypted with ours.

Order of checks: the key the `Wechatpay-Serial` header names, the signature (a
`WECHATPAY/SIGNTEST/` probe is a deliberate mis-signature), our replay window, the
envelope's shape, then AEAD_AES_256_GCM decryption with the APIv3 key and the refund's shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.payout.providers.base import (
    CallbackRefused,
    ProviderNotification,
    TransientProviderError,
)
from services.payout.providers.wechatpay import signing
from services.payout.providers.wechatpay.account import WeChatPayAccount
from services.payout.providers.wechatpay.client import receipt_of

REPLAY_WINDOW_SECONDS = 300
METHOD = "wechat_pay"
EVENT_STATUSES = {
    "REFUND.SUCCESS": "SUCCESS",
    "REFUND.ABNORMAL": "ABNORMAL",
    "REFUND.CLOSED": "CLOSED",
}


class WeChatPayCallbacks:
    def __init__(
        self, account: WeChatPayAccount, *, tolerance_seconds: int = REPLAY_WINDOW_SECONDS
    ) -> None:
        self.account = account
        self.tolerance_seconds = tolerance_seconds
        self._keys = account.platform_keys()
        self._apiv3_key = account.apiv3_key_bytes()

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> ProviderNotification:
        lower = {name.lower(): value for name, value in headers.items()}
        key = self._keys.get(signing.key_id(lower.get("wechatpay-serial", "")))
        if key is None:
            raise CallbackRefused("unknown-key")
        timestamp = lower.get("wechatpay-timestamp", "")
        nonce = lower.get("wechatpay-nonce", "")
        signature = lower.get("wechatpay-signature", "")
        if (
            not (timestamp.isdigit() and nonce and signature)
            or signature.startswith(signing.SIGNTEST_PREFIX)
            or not signing.verify(key, signing.answer_message(timestamp, nonce, body), signature)
        ):
            raise CallbackRefused("bad-signature")
        if abs(now - int(timestamp)) > self.tolerance_seconds:
            raise CallbackRefused("bad-signature")  # signed, but too old: a replay
        envelope = _object(body)
        resource = envelope.get("resource")
        expected = EVENT_STATUSES.get(str(envelope.get("event_type")))
        if (
            not isinstance(envelope.get("id"), str)
            or not envelope["id"]
            or expected is None
            or envelope.get("resource_type") != "encrypt-resource"
            or not isinstance(resource, dict)
            or resource.get("algorithm") != "AEAD_AES_256_GCM"
            or not all(isinstance(resource.get(k), str) for k in ("ciphertext", "nonce"))
        ):
            raise CallbackRefused("malformed")
        try:
            plain = signing.decrypt_resource(
                self._apiv3_key,
                resource["nonce"],
                resource["ciphertext"],
                str(resource.get("associated_data") or ""),
            )
        except signing.DecryptionFailed:
            raise CallbackRefused("undecryptable") from None
        refund = _object(plain)
        if (
            refund.get("mchid") != self.account.mchid
            or refund.get("refund_status") != expected
            or not isinstance(refund.get("out_refund_no"), str)
        ):
            raise CallbackRefused("malformed")
        try:
            receipt = receipt_of(refund)
        except (TransientProviderError, ValueError, TypeError, AttributeError):
            raise CallbackRefused("malformed") from None
        return ProviderNotification(
            callback_id=envelope["id"],
            type=str(envelope["event_type"]),
            merchant_refund_no=refund["out_refund_no"],
            method=METHOD,
            receipt=receipt,
        )


def _object(data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise CallbackRefused("malformed") from None
    if not isinstance(parsed, dict):
        raise CallbackRefused("malformed")
    return parsed
