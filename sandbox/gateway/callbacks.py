"""Completes asynchronous refunds when due and delivers signed callbacks with retries."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable

import httpx

from sandbox.gateway.faults import Faults
from sandbox.gateway.protocol import CALLBACK_ID_HEADER, SIGNATURE_HEADER, signature_header
from sandbox.gateway.sender import CallbackSender, SendError
from sandbox.gateway.store import Attempt, Delivery, Store
from sandbox.serving import DueWork

log = logging.getLogger(__name__)


class Completer(DueWork):
    """Completes asynchronous refunds when due and delivers signed callbacks with retries.

    Cheap per refund: a refund completed on the spot hands its already claimed callback
    over in memory (`hand_over`), and a delivered attempt is recorded with the next look at
    the store, so each look is one thread hop and one commit for everything due. A stop
    records what was delivered (`flush`); an attempt cut short stays claimed and is made
    again on the next start (receivers deduplicate by id).
    """

    WHAT = "sandbox gateway completer"

    def __init__(self, store: Store, faults: Faults, secret: str) -> None:
        super().__init__()
        self._store = store
        self._faults = faults
        self._secret = secret
        self._pending = threading.Lock()  # guards the two lists below, filled from any thread
        self._handed: list[Delivery] = []
        self._finished: list[Attempt] = []
        self._look_now = True
        self._look_at = 0.0
        self._sender: CallbackSender | None = None  # plain-http callbacks, while running

    async def run(self) -> None:
        # Its connections belong to this run's loop (an app may be served again, on another).
        self._sender = CallbackSender(self.TIMEOUT_SECONDS)
        try:
            await super().run()
        finally:
            sender, self._sender = self._sender, None
            await sender.close()

    @property
    def running(self) -> bool:
        return self._loop is not None

    def wake(self) -> None:
        """Look at the store now (a refund became due, or an attempt failed)."""
        self._look_now = True
        super().wake()

    def hand_over(self, deliveries: Iterable[Delivery]) -> None:
        """Send callbacks the caller claimed in its own commit; callable from any thread."""
        with self._pending:
            self._handed.extend(deliveries)
        super().wake()

    def flush(self) -> None:
        """Record the finished attempts not yet recorded (a reader of /callbacks sees them)."""
        with self._pending:
            finished, self._finished = self._finished, []
        self._store.record(finished)

    async def step(self, client: httpx.AsyncClient, deliveries: set[asyncio.Task[None]]) -> float:
        with self._pending:
            handed, self._handed = self._handed, []
        for delivery in handed:
            self.send(deliveries, client, delivery)
        now = time.time()
        if self._look_now or now >= self._look_at:
            self._look_now = False
            with self._pending:
                finished, self._finished = self._finished, []
            try:
                claimed, next_due = await asyncio.to_thread(
                    self._store.step, now, finished, self._faults.take_dropped_callback
                )
            except BaseException:
                with self._pending:  # recorded with the next look instead
                    self._finished[:0] = finished
                raise
            for delivery in claimed:
                self.send(deliveries, client, delivery)
            self._look_at = time.time() + self.wait_for(next_due)
        return max(0.0, self._look_at - time.time())

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature_header(self._secret, timestamp, delivery.body),
            CALLBACK_ID_HEADER: delivery.id,
            "User-Agent": "sandbox-gateway",
        }
        try:
            if self._sender is not None and self._sender.handles(delivery.notify_url):
                status = await self._sender.post(delivery.notify_url, delivery.body, headers)
            else:
                response = await client.post(
                    delivery.notify_url, content=delivery.body, headers=headers
                )
                status = response.status_code
            delivered = 200 <= status < 300
            result = f"HTTP {status}"
        except SendError as error:
            delivered = False
            result = error.name
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
        with self._pending:
            self._finished.append(Attempt(delivery, state, result, next_attempt_at, time.time()))
        if not delivered:
            self.wake()  # record it now: its retry may be due before the next look
