"""Alipay's asynchronous notifications about refunds, verified.

Alipay POSTs a form (`application/x-www-form-urlencoded`) to the notify URL. It is signed
RSA2 over the sorted `k=v&...` string of every parameter but `sign` and `sign_type`, with
the values URL-decoded, and verified with the Alipay public key. A refund's notification
is a `trade_status_sync` that carries `out_biz_no` (the refund's `out_request_no`) and
`gmt_refund`. Alipay retries until it reads the literal body `success`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from urllib.parse import parse_qsl

from services.payout.providers.alipay.account import AlipayAccount
from services.payout.providers.alipay.amounts import BEIJING, CURRENCY, TIME_FORMAT
from services.payout.providers.alipay.signing import content_to_sign, verify
from services.payout.providers.base import (
    CallbackRefused,
    ProviderNotification,
    ProviderReceipt,
)

REPLAY_WINDOW_SECONDS = 300
NOTIFY_TYPE = "trade_status_sync"
REQUIRED = ("notify_id", "notify_time", "out_biz_no", "trade_no", "gmt_refund")
# Codecs Alipay names in `charset`; the form's percent-escapes decode in that codec.
CHARSETS = {"utf-8": "utf-8", "gbk": "gbk", "gb2312": "gbk"}


class AlipayCallbacks:
    """Verifies one merchant app's notifications: signature, freshness, shape."""

    def __init__(self, account: AlipayAccount, replay_window: int = REPLAY_WINDOW_SECONDS):
        self.app_id = account.app_id
        self._alipay_key = account.alipay_key()
        self.replay_window = replay_window

    def verify(
        self, headers: Mapping[str, str], body: bytes, now: float | None = None
    ) -> ProviderNotification:
        """The refund notification in the exact `body`; CallbackRefused otherwise."""
        moment = time.time() if now is None else now
        params = _form(body)
        if params.get("app_id", self.app_id) != self.app_id or "alipay_cert_sn" in params:
            # Another app's notification, or certificate mode: no key of ours can vouch.
            raise CallbackRefused("unknown-key")
        signature = params.get("sign", "")
        if params.get("sign_type", "RSA2") != "RSA2" or not signature:
            raise CallbackRefused("bad-signature")
        content = content_to_sign(params, exclude=("sign", "sign_type"))
        if not verify(self._alipay_key, content, signature):
            raise CallbackRefused("bad-signature")
        if any(not params.get(name) for name in REQUIRED):
            raise CallbackRefused("malformed")
        try:
            sent = datetime.strptime(params["notify_time"], TIME_FORMAT).replace(tzinfo=BEIJING)
            refunded = _refund_time(params["gmt_refund"])
        except ValueError:
            raise CallbackRefused("malformed") from None
        if abs(moment - sent.timestamp()) > self.replay_window:
            raise CallbackRefused("bad-signature")  # genuine once, but too old: a replay
        if params.get("notify_type", NOTIFY_TYPE) != NOTIFY_TYPE:
            raise CallbackRefused("malformed")
        receipt = ProviderReceipt(
            provider_reference=params["trade_no"],
            executed_at=refunded,
            status="success",
            merchant_refund_no=params["out_biz_no"],
            # `refund_fee` is the trade's refunded total, not this refund's amount.
            amount=None,
            currency=CURRENCY,
        )
        return ProviderNotification(
            callback_id=params["notify_id"],
            type="refund.success",
            merchant_refund_no=params["out_biz_no"],
            method="alipay",
            receipt=receipt,
        )


def _form(body: bytes) -> dict[str, str]:
    try:
        text = body.decode("ascii")
        first = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
        codec = CHARSETS.get(first.get("charset", "utf-8").lower())
        if codec is None:
            raise ValueError("unknown charset")
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, encoding=codec, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        raise CallbackRefused("malformed") from None
    params = dict(pairs)
    if len(params) != len(pairs):  # a repeated name: which one was signed?
        raise CallbackRefused("malformed")
    return params


def _refund_time(text: str) -> datetime:
    # Alipay writes gmt_refund with milliseconds ("2015-04-28 15:45:57.320").
    for pattern in (TIME_FORMAT + ".%f", TIME_FORMAT):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=BEIJING)
        except ValueError:
            continue
    raise ValueError(f"not an Alipay time: {text!r}")
