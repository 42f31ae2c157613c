"""Settles pending refunds when due and delivers signed webhook events with retries.

Signature as Stripe documents it (docs.stripe.com/webhooks#verify-manually):
`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, one `v1` per
secret the endpoint signs with (two while a secret is being rolled).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time

import httpx

from sandbox.serving import DueWork
from sandbox.stripe.faults import Faults
from sandbox.stripe.store import Delivery, Store

log = logging.getLogger(__name__)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secrets: tuple[str, ...], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={sign(s, timestamp, body)}" for s in secrets)])


class Webhooks(DueWork):
    WHAT = "stripe emulator webhooks"

    def __init__(self, store: Store, faults: Faults) -> None:
        super().__init__()
        self._store = store
        self._faults = faults

    async def step(self, client: httpx.AsyncClient, sending: set[asyncio.Task[None]]) -> float:
        await asyncio.to_thread(
            self._store.settle_due, lambda: self._faults.take("drop_webhooks_next")
        )
        for delivery in await asyncio.to_thread(self._store.claim_due):
            self.send(sending, client, delivery)
        return self.wait_for(await asyncio.to_thread(self._store.next_due))

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        timestamp = int(time.time())  # real time: the receiver checks it against its clock
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header(delivery.secrets, timestamp, delivery.body),
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        try:
            response = await client.post(delivery.url, content=delivery.body, headers=headers)
            delivered = 200 <= response.status_code < 300
            result = f"HTTP {response.status_code}"
        except Exception as error:  # unreachable, timed out: a failed attempt
            delivered, result = False, type(error).__name__
        attempts = delivery.attempts + 1
        next_at: float | None = None
        if delivered:
            state = "delivered"
        elif attempts >= self._faults.get("webhook_max_attempts"):
            state = "failed"
            log.warning("event %s gave up after %d attempts: %s", delivery.id, attempts, result)
        else:
            state = "pending"
            next_at = time.time() + self._faults.get("webhook_retry_ms") / 1000 * 2 ** (
                attempts - 1
            )
        await asyncio.to_thread(self._store.finish, delivery, state, result, next_at)
        self.wake()
