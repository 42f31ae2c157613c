"""Moves the money: follows the payout log and settles each pending payout exactly once."""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from datetime import UTC, datetime

from eventsourcing.utils import get_topic

from services.payout.application import PayoutApplication
from services.payout.domain import Payout
from services.payout.gateway import PermanentGatewayError, SandboxGateway, TransientGatewayError
from shared.aio import sleep_or_stop
from shared.follower import LogFollower

log = logging.getLogger(__name__)


class Stopping(Exception):
    """The service stops mid-payout; the batch must not be marked done."""


class PayoutExecutor:
    """Calls the gateway for every requested payout, with the approval-derived refund number.

    The follower position advances only after every payout of a batch is settled,
    so a crash repeats the calls; the gateway answers a repeated merchant refund
    number with the original result instead of paying again.
    """

    def __init__(
        self,
        app: PayoutApplication,
        gateway: SandboxGateway,
        *,
        max_attempts: int = 5,
        base_delay: float = 0.2,
        max_delay: float = 10.0,
        concurrency: int = 16,
    ) -> None:
        self.app = app
        self.gateway = gateway
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.concurrency = concurrency
        self.follower = LogFollower(app, "executor", topics=[get_topic(Payout.Requested)])  # type: ignore[attr-defined]

    async def run(self, stop: asyncio.Event) -> None:
        await self.follower.load()
        while not stop.is_set():
            try:
                batch = await self.follower.next_batch(wait=1.0)
                if not batch:
                    continue
                limit = asyncio.Semaphore(self.concurrency)
                await asyncio.gather(
                    *(self._execute(e.event.originator_id, limit, stop) for e in batch)
                )
                await self.follower.advance(batch[-1].position)
            except Stopping:
                return
            except Exception:  # store trouble: keep the position, try again shortly
                log.exception("payout executor failed; retrying")
                await sleep_or_stop(stop, 1.0)

    async def _execute(
        self, payout_id: uuid.UUID, limit: asyncio.Semaphore, stop: asyncio.Event
    ) -> None:
        async with limit:
            payout = await asyncio.to_thread(self.app.payout, payout_id)
            attempts = payout.attempts
            while payout.is_pending:
                try:
                    receipt = await self.gateway.refund(
                        merchant_refund_no=payout.merchant_refund_no,
                        amount=payout.amount.amount,
                        currency=payout.amount.currency,
                        method=payout.method,
                        reference=payout.payment_reference,
                    )
                except PermanentGatewayError as error:
                    await asyncio.to_thread(self.app.record_failure, payout_id, str(error), _now())
                    return
                except TransientGatewayError as error:
                    attempts += 1
                    payout = await asyncio.to_thread(
                        self.app.record_failed_attempt, payout_id, str(error), _now()
                    )
                    if attempts >= self.max_attempts:
                        await asyncio.to_thread(
                            self.app.record_failure, payout_id, str(error), _now()
                        )
                        return
                    await sleep_or_stop(stop, self._delay(attempts, error.retry_after))
                    if stop.is_set():
                        raise Stopping from None
                    continue
                await asyncio.to_thread(
                    self.app.record_success,
                    payout_id,
                    receipt.provider_reference,
                    receipt.executed_at,
                )
                return

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        backoff: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return backoff * random.uniform(0.5, 1.0)  # full jitter keeps retries from aligning


def _now() -> datetime:
    return datetime.now(UTC)
