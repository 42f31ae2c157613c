"""Completes asynchronous refunds when due and delivers signed callbacks with retries."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx

from sandbox.gateway.faults import Faults
from sandbox.gateway.protocol import CALLBACK_ID_HEADER, SIGNATURE_HEADER, signature_header
from sandbox.gateway.store import Delivery, Store
from sandbox.serving import DueWork

log = logging.getLogger(__name__)


class Completer(DueWork):
    """Completes asynchronous refunds when due and delivers signed callbacks with retries."""

    WHAT = "sandbox gateway completer"

    def __init__(self, store: Store, faults: Faults, secret: str) -> None:
        super().__init__()
        self._store = store
        self._faults = faults
        self._secret = secret

    async def step(self, client: httpx.AsyncClient, deliveries: set[asyncio.Task[None]]) -> float:
        now = time.time()
        await asyncio.to_thread(self._store.complete_due, now, self._faults.take_dropped_callback)
        for delivery in await asyncio.to_thread(self._store.claim_due_callbacks, now):
            self.send(deliveries, client, delivery)
        return self.wait_for(await asyncio.to_thread(self._store.next_due))

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, timestamp, delivery.body),
            CALLBACK_ID_HEADER: delivery.id,
            "User-Agent": "sandbox-gateway",
        }
        try:
            response = await client.post(
                delivery.notify_url, content=delivery.body, headers=headers
            )
            delivered = 200 <= response.status_code < 300
            result = f"HTTP {response.status_code}"
        except Exception as error:  # unreachable, timed out, unusable URL: a failed attempt
            delivered = False
            result = type(error).__name__
        max_attempts, first_retry = self._faults.callback_policy()
        attempts = delivery.attempts + 1
        next_attempt_at: float | None = None
        if delivered:
            state = "delivered"
        elif attempts >= max_attempts:
            state = "failed"
            log.warning("callback %s gave up after %d attempts: %s", delivery.id, attempts, result)
        else:
            state = "pending"
            next_attempt_at = time.time() + first_retry * 2 ** (attempts - 1)
        await asyncio.to_thread(
            self._store.finish_delivery,
            delivery,
            state=state,
            result=result,
            next_attempt_at=next_attempt_at,
        )
        self.wake()  # the next attempt may already be due
