"""The Stripe, Alipay and WeChat Pay emulators as the provider end-to-end tests see them:
their fault switches, their own record of refunds, their access logs, and their callbacks —
a genuine one rebuilt from the emulator's state with its dev keys, and a forged one."""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

from refunds.devstack import Stack
from sandbox.alipay import dev_keys as alipay_keys
from sandbox.alipay.faults import Faults as AlipayFaults
from sandbox.alipay.notifier import Notifier as AlipayNotifier
from sandbox.alipay.protocol import private_key, rsa2_sign, signing_string
from sandbox.alipay.store import Store as AlipayStore
from sandbox.stripe.dev_keys import DEV_SECRET_KEY, DEV_WEBHOOK_SECRET
from sandbox.stripe.webhooks import signature_header
from sandbox.wechatpay import dev_keys as wechat_keys
from sandbox.wechatpay.faults import Faults as WeChatFaults
from sandbox.wechatpay.ledger import Ledger
from sandbox.wechatpay.notifier import Notifier as WeChatNotifier
from sandbox.wechatpay.protocol import Platform, dev_merchant, dev_platform, signed_headers

# How long each payout route waits for an answer (services/payout/providers/*/client.py):
# a stall longer than this is a timeout to payout.
# Payout's timeout at each provider in these tests' stack (REFUNDS_PROVIDER_TIMEOUT_S).
PROVIDER_TIMEOUT_S = 5.0
CLIENT_TIMEOUT_S = {
    "stripe": PROVIDER_TIMEOUT_S,
    "alipay": PROVIDER_TIMEOUT_S,
    "wechatpay": PROVIDER_TIMEOUT_S,
}
METHOD = {"stripe": "card", "alipay": "alipay", "wechatpay": "wechat_pay"}
# What each provider expects back for a callback it delivered (else it retries).
ANSWER = {
    "stripe": (200, b'{"received": true}'),
    "alipay": (200, b"success"),
    "wechatpay": (204, b""),
}

# Notifications per refund that succeeds at once (Stripe: refund.created, refund.updated).
EVENTS_PER_REFUND = {"stripe": 2, "alipay": 1, "wechatpay": 1}

Callback = tuple[dict[str, str], bytes]


@dataclass(frozen=True)
class Emulator:
    """One provider's emulator in the running stack."""

    name: str
    stack: Stack

    @property
    def url(self) -> str:
        return self.stack.url(self.name)

    @property
    def method(self) -> str:
        return METHOD[self.name]

    def new_reference(self) -> str:
        """A payment reference nobody used: the emulator takes it as a 1,000,000 payment."""
        token = uuid.uuid4().hex
        return {"stripe": "pi_" + token[:24], "alipay": "T" + token[:20]}.get(
            self.name, "W" + token[:20]
        )

    def control(self, **switches: Any) -> None:
        path = {"stripe": "/_sandbox/control", "alipay": "/control"}.get(
            self.name, "/sandbox/control"
        )
        httpx.post(self.url + path, json=switches, timeout=10).raise_for_status()

    def drop_callbacks(self) -> None:
        """The next refund's notifications are never sent (Stripe: its two events)."""
        switch = {"stripe": "drop_webhooks_next", "alipay": "drop_notifications_next"}
        self.control(**{switch.get(self.name, "drop_callbacks_next"): EVENTS_PER_REFUND[self.name]})

    # -- the emulator's own record ------------------------------------------------------------

    def refunds(self, reference: str) -> list[tuple[str, int]]:
        """(merchant refund number, amount in minor units) of every refund of the payment."""
        if self.name == "stripe":
            answer = httpx.get(
                self.url + "/v1/refunds",
                params={"payment_intent": reference, "limit": 100},
                headers={"Authorization": f"Bearer {DEV_SECRET_KEY}"},
                timeout=10,
            )
            answer.raise_for_status()
            return [
                (r["metadata"].get("merchant_refund_no", ""), int(r["amount"]))
                for r in answer.json()["data"]
                if r["status"] != "failed"
            ]
        if self.name == "alipay":
            path = self.stack.data_dir / "alipay" / "alipay.sqlite"
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                rows = db.execute(
                    "SELECT r.out_request_no, r.amount FROM refunds r "
                    "JOIN trades t ON t.trade_no = r.trade_no WHERE t.out_trade_no = ?",
                    (reference,),
                ).fetchall()
            return [(str(number), int(amount)) for number, amount in rows]
        answer = httpx.get(self.url + "/sandbox/refunds", timeout=10)
        answer.raise_for_status()
        return [
            (r["out_refund_no"], int(r["amount"]["refund"]))
            for r in answer.json()["refunds"]
            if r["out_trade_no"] == reference and r["status"] in ("SUCCESS", "PROCESSING")
        ]

    # -- callbacks ----------------------------------------------------------------------------

    def delivered(self, number: str) -> bool:
        """Whether the emulator delivered a notification about `number` (payout took it)."""
        return any(self._deliveries(number))

    def _deliveries(self, number: str) -> list[dict[str, Any]]:
        if self.name == "stripe":
            path = self.stack.data_dir / "stripe" / "stripe.sqlite"
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                db.row_factory = sqlite3.Row
                rows = db.execute(
                    "SELECT * FROM deliveries WHERE state = 'delivered' AND body LIKE ?",
                    (f"%{number}%",),
                ).fetchall()
            return [dict(row) for row in rows]
        if self.name == "alipay":
            found = httpx.get(self.url + "/notifications", timeout=10).json()["notifications"]
        else:
            found = httpx.get(self.url + "/sandbox/notifications", timeout=10).json()
            found = found["notifications"]
        key = "out_request_no" if self.name == "alipay" else "out_refund_no"
        return [n for n in found if n[key] == number and n["state"] == "delivered"]

    def genuine_callback(self, number: str) -> Callback:
        """The notification the emulator delivered about `number`, signed afresh with the
        emulator's own key (the same id: a replay)."""
        delivery = self._deliveries(number)[0]
        if self.name == "stripe":
            body = str(delivery["body"]).encode()
            return _stripe_headers(DEV_WEBHOOK_SECRET, body), body
        if self.name == "alipay":
            store = AlipayStore(self.stack.data_dir / "alipay")
            store.open()
            try:
                key = private_key(alipay_keys.ALIPAY_PRIVATE_KEY)
                notifier = AlipayNotifier(
                    store, AlipayFaults(), key, alipay_keys.DEV_APP_ID, alipay_keys.DEV_SELLER_ID
                )
                form = notifier.form(delivery, time.time())
            finally:
                store.close()
            return _FORM, urlencode(form).encode()
        ledger = Ledger(self.stack.data_dir / "wechatpay", 1_000_000)
        notice = ledger.notifications[delivery["id"]]
        merchants = {wechat_keys.MCHID: dev_merchant()}
        body = WeChatNotifier(ledger, WeChatFaults(), dev_platform(), merchants).envelope(notice)
        return _wechat_headers(dev_platform(), body), body

    def forged_callback(self, number: str) -> Callback:
        """The genuine notification's content signed with a key that is not the provider's."""
        headers, body = self.genuine_callback(number)
        if self.name == "stripe":
            return _stripe_headers("whsec_" + "forged" * 5, body), body
        if self.name == "alipay":
            # Signed with the merchant's own app key, which Alipay never signs with.
            form = dict(_parse_form(body))
            form.pop("sign")
            text = signing_string(form, drop=("sign", "sign_type"))
            form["sign"] = rsa2_sign(private_key(alipay_keys.APP_PRIVATE_KEY), text)
            return headers, urlencode(form).encode()
        merchant = private_key(wechat_keys.MERCHANT_PRIVATE_KEY)
        impostor = Platform(
            merchant, wechat_keys.PLATFORM_SERIAL_NO, wechat_keys.PLATFORM_PUBLIC_KEY_ID
        )
        return _wechat_headers(impostor, body), body


_FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def _parse_form(body: bytes) -> list[tuple[str, str]]:
    return parse_qsl(body.decode(), keep_blank_values=True)


def _stripe_headers(secret: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature_header((secret,), int(time.time()), body),
    }


def _wechat_headers(platform: Platform, body: bytes) -> dict[str, str]:
    signed = signed_headers(platform, body, serial=wechat_keys.PLATFORM_PUBLIC_KEY_ID)
    return {"Content-Type": "application/json", **signed}
