"""Asynchronous notifications: when a refund's money has moved, a signed form POST to the
notify_url the refund request carried, retried until the receiver answers `success`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.alipay.faults import Faults
from sandbox.alipay.protocol import beijing, rsa2_sign, signing_string, yuan
from sandbox.alipay.store import Store
from shared.http_client import ONE_PEER

POLL_SECONDS = 0.05
# While nothing is due the notifier looks less and less often, up to this: twenty looks a
# second at an idle store were most of the emulator's idle cost. A refund made here wakes it
# at once (`wake`): Alipay announces a refund as its money moves, and a notification fault
# armed after a refund was made must not strike that refund's announcement.
IDLE_POLL_SECONDS = 1.0
ACK = "success"


class Notifier:
    def __init__(
        self, store: Store, faults: Faults, key: rsa.RSAPrivateKey, app_id: str, seller_id: str
    ) -> None:
        self.store = store
        self.faults = faults
        self.key = key
        self.app_id = app_id
        self.seller_id = seller_id
        self._wake: asyncio.Event | None = None

    def wake(self) -> None:
        """Look now (from the emulator's event loop: a refund was just made)."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        pause = POLL_SECONDS
        self._wake = wake = asyncio.Event()  # a fresh one per run: the app may run again
        async with httpx.AsyncClient(timeout=5.0, limits=ONE_PEER) as client:
            while True:
                wake.clear()
                busy = True
                with contextlib.suppress(Exception):  # one bad round must not end delivery
                    busy = await self.step(client)
                pause = POLL_SECONDS if busy else min(pause * 2, IDLE_POLL_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), pause)

    async def step(self, client: httpx.AsyncClient) -> bool:
        """Announce the refunds whose money moved and deliver what is due; whether there was
        anything to do."""
        now = time.time()
        unannounced = self.store.unannounced(now)
        for refund in unannounced:
            dropped = self.faults.take("drop_notifications_next")
            missign = not dropped and self.faults.take("missign_notifications_next")
            state = "dropped" if dropped else "pending"
            self.store.announce(refund, state=state, missign=missign, now=now)
        due = self.store.due_notifications(now)
        for notification in due:
            await self.deliver(client, notification)
        return bool(unannounced or due)

    def form(self, notification: dict[str, Any], now: float) -> dict[str, str]:
        """The notification's parameters at this attempt (notify_time is the sending time)."""
        refund = self.store.refund(notification["trade_no"], notification["out_request_no"])
        trade = self.store.trade(notification["trade_no"], None)
        assert refund is not None and trade is not None
        params = {
            "notify_time": beijing(now),
            "notify_type": "trade_status_sync",
            "notify_id": notification["notify_id"],
            "app_id": self.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": trade["trade_no"],
            "out_trade_no": trade["out_trade_no"] or "",
            "out_biz_no": refund["out_request_no"],
            "buyer_id": "2088102100000001",
            "seller_id": self.seller_id,
            "trade_status": "TRADE_CLOSED"
            if trade["refunded"] >= trade["total"]
            else "TRADE_SUCCESS",
            "total_amount": yuan(trade["total"]),
            "refund_fee": yuan(trade["refunded"]),
            "gmt_create": beijing(trade["created_at"]),
            "gmt_payment": beijing(trade["created_at"]),
            "gmt_refund": beijing(refund["paid_at"], millis=True),
        }
        params = {name: value for name, value in params.items() if value}
        content = signing_string(params, drop=("sign", "sign_type"))
        if notification["missign"]:
            content += "&mis-signed=1"  # a valid-looking signature over other content
        params["sign"] = rsa2_sign(self.key, content)
        return params

    async def deliver(self, client: httpx.AsyncClient, notification: dict[str, Any]) -> None:
        now = time.time()
        body = urlencode(self.form(notification, now))
        try:
            response = await client.post(
                notification["notify_url"],
                content=body.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            )
            done = response.status_code == 200 and response.text.strip() == ACK
            result = f"HTTP {response.status_code}"
        except httpx.HTTPError as error:
            done, result = False, type(error).__name__
        attempts = notification["attempts"] + 1
        switches = self.faults.switches
        if done:
            state = "delivered"
        elif attempts >= switches.notify_max_attempts:
            state = "failed"
        else:
            state = "pending"
        wait = switches.notify_retry_ms / 1000 * 2 ** (attempts - 1)
        self.store.attempted(
            notification["notify_id"], state=state, result=result, next_at=now + wait
        )
