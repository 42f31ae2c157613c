"""Completes asynchronous refunds when due and delivers signed callbacks with retries."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import httpx

from sandbox.gateway.faults import Faults
from sandbox.gateway.protocol import CALLBACK_ID_HEADER, SIGNATURE_HEADER, signature_header
from sandbox.gateway.store import Delivery, Store

log = logging.getLogger(__name__)

CALLBACK_TIMEOUT_SECONDS = 5.0
# The completer also polls, so refunds and callbacks made due by another process get done.
POLL_SECONDS = 0.5


class Completer:
    """Completes asynchronous refunds when due and delivers signed callbacks with retries."""

    def __init__(self, store: Store, faults: Faults, secret: str) -> None:
        self._store = store
        self._faults = faults
        self._secret = secret
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Look for due work now; callable from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        # A fresh event per run: an app may be served again, on another loop.
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        deliveries: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_SECONDS) as client:
            try:
                while True:
                    self._wake.clear()
                    try:
                        wait = await self._step(client, deliveries)
                    except Exception:  # storage trouble: keep the worker alive
                        log.exception("sandbox gateway completer failed; retrying")
                        wait = POLL_SECONDS
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
            finally:
                self._loop = None
                for task in deliveries:
                    task.cancel()
                await asyncio.gather(*deliveries, return_exceptions=True)

    async def _step(self, client: httpx.AsyncClient, deliveries: set[asyncio.Task[None]]) -> float:
        now = time.time()
        await asyncio.to_thread(self._store.complete_due, now, self._faults.take_dropped_callback)
        for delivery in await asyncio.to_thread(self._store.claim_due_callbacks, now):
            task = asyncio.create_task(self._deliver_logged(client, delivery))
            deliveries.add(task)
            task.add_done_callback(deliveries.discard)
        next_due = await asyncio.to_thread(self._store.next_due)
        if next_due is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, next_due - time.time()))

    async def _deliver_logged(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            await self._deliver(client, delivery)
        except Exception:  # the attempt stays claimed until the next start retries it
            log.exception("callback %s: recording the attempt failed", delivery.id)

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
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
        self._wake.set()
