"""Delivers queued pushes to subscribers' callback URLs, retrying as Kuaidi100 does."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx

from sandbox.carrier.faults import Faults
from sandbox.carrier.protocol import PUSH_ACCEPTED
from sandbox.carrier.store import Delivery, Store
from sandbox.serving import DueWork

log = logging.getLogger(__name__)


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


class Pusher(DueWork):
    """Sends due pushes; a refused or failed attempt is made again after the retry interval."""

    WHAT = "sandbox carrier pusher"

    def __init__(self, store: Store, faults: Faults) -> None:
        super().__init__()
        self._store = store
        self._faults = faults

    async def step(self, client: httpx.AsyncClient, sending: set[asyncio.Task[None]]) -> float:
        for delivery in await asyncio.to_thread(self._store.claim_due_pushes, time.time()):
            self.send(sending, client, delivery)
        return self.wait_for(await asyncio.to_thread(self._store.next_due))

    async def deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
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
        self.wake()  # the next attempt may already be due
