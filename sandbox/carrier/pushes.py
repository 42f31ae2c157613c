"""Delivers queued pushes to subscribers' callback URLs, retrying as Kuaidi100 does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import httpx

from sandbox.carrier.faults import Faults
from sandbox.carrier.protocol import PUSH_ACCEPTED
from sandbox.carrier.store import Delivery, Store

log = logging.getLogger(__name__)

PUSH_TIMEOUT_SECONDS = 5.0
POLL_SECONDS = 0.5  # also polls, so pushes queued by another process get sent


def accepted(status_code: int, body: bytes) -> bool:
    """A push counts as delivered only when answered {"result": true, "returnCode": "200"}."""
    if not 200 <= status_code < 300:
        return False
    try:
        answer = json.loads(body)
    except ValueError:
        return False
    return (
        isinstance(answer, dict)
        and answer.get("result") is PUSH_ACCEPTED["result"]
        and str(answer.get("returnCode")) == PUSH_ACCEPTED["returnCode"]
    )


class Pusher:
    """Sends due pushes; a refused or failed attempt is made again after the retry interval."""

    def __init__(self, store: Store, faults: Faults) -> None:
        self._store = store
        self._faults = faults
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Look for due pushes now; callable from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop is shutting down
                loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._wake = asyncio.Event()  # a fresh event per run: the app may be served again
        self._loop = asyncio.get_running_loop()
        sending: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(timeout=PUSH_TIMEOUT_SECONDS) as client:
            try:
                while True:
                    self._wake.clear()
                    try:
                        wait = await self._step(client, sending)
                    except Exception:  # storage trouble: keep the worker alive
                        log.exception("sandbox carrier pusher failed; retrying")
                        wait = POLL_SECONDS
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
            finally:
                self._loop = None
                for task in sending:
                    task.cancel()
                await asyncio.gather(*sending, return_exceptions=True)

    async def _step(self, client: httpx.AsyncClient, sending: set[asyncio.Task[None]]) -> float:
        for delivery in await asyncio.to_thread(self._store.claim_due_pushes, time.time()):
            task = asyncio.create_task(self._deliver_logged(client, delivery))
            sending.add(task)
            task.add_done_callback(sending.discard)
        next_due = await asyncio.to_thread(self._store.next_due)
        if next_due is None:
            return POLL_SECONDS
        return min(POLL_SECONDS, max(0.0, next_due - time.time()))

    async def _deliver_logged(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            await self._deliver(client, delivery)
        except Exception:  # the attempt stays claimed until the next start retries it
            log.exception("push %s: recording the attempt failed", delivery.id)

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        try:
            response = await client.post(
                delivery.url, data=delivery.form, headers={"User-Agent": "sandbox-carrier"}
            )
            delivered = accepted(response.status_code, response.content)
            result = f"HTTP {response.status_code}" + ("" if delivered else " not accepted")
        except Exception as error:  # unreachable, timed out, unusable URL: a failed attempt
            delivered = False
            result = type(error).__name__
        max_attempts, retry_seconds = self._faults.push_policy()
        retry_at = None
        if not delivered and delivery.attempts + 1 < max_attempts:
            retry_at = time.time() + retry_seconds
        elif not delivered:
            log.warning("push %s gave up after %d attempts: %s", delivery.id, max_attempts, result)
        await asyncio.to_thread(
            self._store.finish_push,
            delivery,
            delivered=delivered,
            result=result,
            retry_at=retry_at,
        )
        self._wake.set()
