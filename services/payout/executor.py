"""Moves the money: follows the payout log and settles each pending payout exactly once.

For every payout waiting to be sent (requested, retried by finance, or switched to
store balance) the executor

1. asks every route an earlier request of this payout went to whether the money
   moved there (a switch to store balance must not pay twice);
2. queries the current route before it re-sends anything it may have sent before
   (a crash between sending and recording, a timeout after the money moved):
   404 → send; processing → wait for the callback or the poller; success → paid;
   closed/abnormal → failed;
3. converts a cross-border payout (route billed in another currency) at the gateway's
   rate, recorded once with the payout and reused by every later attempt;
4. records `Dispatched` before the request leaves, so that a withdrawal can no
   longer cancel it, and sends with the approval-derived merchant refund number;
5. retries transient failures (timeouts, 5xx, 429) with exponential backoff and
   jitter, honouring Retry-After, bounded in attempts and in total time; a
   permanent failure stops at once. Giving up records the failure with its cause.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from eventsourcing.utils import get_topic

from services.payout.adapters import Routes, order_of
from services.payout.application import PayoutApplication
from services.payout.domain import Payout
from services.payout.fx import convert
from services.payout.providers.base import (
    PermanentProviderError,
    ProviderReceipt,
    RefundRoute,
    TransientProviderError,
)
from shared import tracing
from shared.aio import sleep_or_stop
from shared.follower import LogFollower

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Sleep = Callable[[asyncio.Event, float], Awaitable[None]]

# The events after which a payout waits to be sent.
WAKE_EVENTS = ("Requested", "RetryRequested", "SwitchedToStoreBalance")


class Stopping(Exception):
    """The service stops mid-payout; the batch must not be marked done."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded in attempts and in total time."""

    max_attempts: int = 5
    window_s: float = 900.0
    base_delay_s: float = 0.2
    max_delay_s: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """The wait after the `attempt`-th failure; never shorter than the provider asked."""
        backoff = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        jittered = backoff * rng.uniform(0.5, 1.0)  # spreads retries of many payouts apart
        if retry_after is not None:
            return max(retry_after, jittered)
        return jittered


def _now() -> datetime:
    return datetime.now(UTC)


class PayoutExecutor:
    """Calls the payout's route for every payout waiting to be sent.

    The follower position advances only after every payout of a batch is settled
    (or accepted and left to the callback/poller), so a crash repeats the batch;
    the query-before-send step makes the repeat send nothing twice.
    """

    def __init__(
        self,
        app: PayoutApplication,
        routes: Routes,
        *,
        policy: RetryPolicy | None = None,
        concurrency: int = 16,
        poll_interval: float = 0.02,
        clock: Clock = _now,
        sleep: Sleep = sleep_or_stop,
        rng: random.Random | None = None,
    ) -> None:
        self.app = app
        self.routes = routes
        self.policy = policy or RetryPolicy()
        self.concurrency = concurrency
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        topics = [get_topic(getattr(Payout, name)) for name in WAKE_EVENTS]
        self.follower = LogFollower(app, "executor", topics=topics, poll_interval=poll_interval)

    async def run(self, stop: asyncio.Event) -> None:
        await self.follower.load()
        await self._execute_until(stop)
        await self.follower.flush()

    async def _execute_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                batch = await self.follower.next_batch(wait=1.0)
                if not batch:
                    continue
                limit = asyncio.Semaphore(self.concurrency)
                # Each payout's work continues the trace of its latest event in the batch.
                causes = {e.event.originator_id: e.traceparent for e in batch}
                await asyncio.gather(
                    *(self._limited(i, cause, limit, stop) for i, cause in causes.items())
                )
                await self.follower.advance(batch[-1].position)
            except Stopping:
                return
            except Exception:  # store trouble: keep the position, try again shortly
                log.exception("payout executor failed; retrying")
                await sleep_or_stop(stop, 1.0)

    async def _limited(
        self,
        payout_id: uuid.UUID,
        cause: str | None,
        limit: asyncio.Semaphore,
        stop: asyncio.Event,
    ) -> None:
        async with limit:
            with tracing.continuing("payout execute", cause, payout_id=str(payout_id)):
                await self.execute(payout_id, stop)

    async def execute(self, payout_id: uuid.UUID, stop: asyncio.Event) -> None:
        """Drive one payout until it is settled, accepted, cancelled or given up."""
        while True:
            try:
                # A payout sent nowhere yet, in one store call: loaded, its dispatch recorded
                # and its route found; anything else takes the steps below one by one.
                payout, route = await self.app.call(self._dispatch_first, payout_id)
                if payout.status != "pending":
                    return  # settled, or cancelled by a withdrawal just before: nothing sent
                if route is None:
                    if await self._settled_before_sending(payout):
                        return
                    if payout.needs_conversion:
                        payout = await self._convert(payout)
                    payout = await self.app.call(self._dispatch, payout)
                    if payout.status != "pending":
                        return  # cancelled by a withdrawal just before: nothing was sent
                    route = await self._route(payout, payout.number, payout.method)
                receipt = await route.refund(order_of(payout))
            except PermanentProviderError as error:
                if error.receipt is not None:
                    await self._record(payout, payout.number, payout.method, error.receipt)
                else:
                    await self.app.call(
                        self.app.record_failure, payout_id, str(error), self.clock()
                    )
                return
            except TransientProviderError as error:
                if not await self._wait_for_retry(payout_id, error, stop):
                    return
                continue
            await self._record(payout, payout.number, payout.method, receipt)
            return

    def _dispatch_first(self, payout_id: uuid.UUID) -> tuple[Payout, RefundRoute | None]:
        """The payout; when it is pending, was never sent and needs no conversion, also
        its dispatch recorded and the route it goes to (else None: the caller goes step by
        step, querying where earlier requests went and fetching a rate first)."""
        payout = self.app.payout(payout_id)
        if payout.status != "pending" or payout.was_sent or payout.needs_conversion:
            return payout, None
        payout = self._dispatch(payout)
        if payout.status != "pending":
            return payout, None
        return payout, self.routes.sent_route(payout, payout.number, payout.method)

    def _dispatch(self, payout: Payout) -> Payout:
        """Record that the current request goes out now, naming its provider: the tenant's
        account for the method, or the default (a store call: run through `app.call`)."""
        provider = payout.provider_of(payout.number, payout.method)
        if provider is None:
            provider = self.routes.provider_for(payout.tenant, payout.method)
        return self.app.record_dispatch(payout.id, self.clock(), provider)

    async def _convert(self, payout: Payout) -> Payout:
        """Fetch the rate and record the conversion, once: retries reuse the recorded one."""
        if self.routes.rates is None:
            raise PermanentProviderError("no exchange rate source for a cross-border payout")
        quote = str(payout.payment_currency)
        rate = await self.routes.rates.rate(payout.amount.currency, quote)
        conversion = convert(payout.amount, rate, rounding="half_even")
        return await self.app.call(self.app.record_conversion, payout.id, conversion.as_record())

    async def _settled_before_sending(self, payout: Payout) -> bool:
        """Query every route this payout may already have reached; True when that settled it."""
        for number, route in payout.sent:
            if payout.is_current(number, route):
                continue
            there = await self._route(payout, number, route)
            earlier = await there.query(order_of(payout, number, route))
            if earlier is None or earlier.failed:
                continue
            if earlier.status == "processing":
                raise TransientProviderError(f"earlier request {number} still processing")
            await self._record(payout, number, route, earlier)
            return True
        if payout.has_sent(payout.number, payout.method):
            current = await self._route(payout, payout.number, payout.method)
            found = await current.query(order_of(payout))
            if found is not None:
                await self._record(payout, payout.number, payout.method, found)
                return True
        return False

    async def _route(self, payout: Payout, number: str, route: str) -> RefundRoute:
        """Where (number, route) went, or goes now (a store look-up: `app.call`)."""
        return await self.app.call(self.routes.sent_route, payout, number, route)

    async def _record(
        self, payout: Payout, number: str, route: str, receipt: ProviderReceipt
    ) -> None:
        await self.app.call(
            self.app.record_receipt, payout.id, number, route, receipt, self.clock()
        )

    async def _wait_for_retry(
        self, payout_id: uuid.UUID, error: TransientProviderError, stop: asyncio.Event
    ) -> bool:
        """Record the failed attempt and wait; False when the series gave up instead."""
        now = self.clock()
        payout = await self.app.call(self.app.record_failed_attempt, payout_id, str(error), now)
        if not payout.is_pending:
            return False
        delay = self.policy.delay(payout.attempts, error.retry_after, self.rng)
        started = payout.series_started_at or now
        elapsed = (now - started).total_seconds()
        cause = None
        if payout.attempts >= self.policy.max_attempts:
            cause = f"gave up after {payout.attempts} attempts: {error}"
        elif elapsed + delay > self.policy.window_s:
            cause = f"gave up after {elapsed:.0f}s ({payout.attempts} attempts): {error}"
        if cause is not None:
            if not await self._settled_by_last_look(payout):
                await self.app.call(self.app.record_failure, payout_id, cause, self.clock())
            return False
        await self.sleep(stop, delay)
        if stop.is_set():
            raise Stopping from None
        return True

    async def _settled_by_last_look(self, payout: Payout) -> bool:
        """Before giving up, one status query: the money may have moved after all."""
        if not payout.has_sent(payout.number, payout.method):
            return False
        try:
            current = await self._route(payout, payout.number, payout.method)
            found = await current.query(order_of(payout))
        except (TransientProviderError, PermanentProviderError):
            return False
        if found is None:
            return False
        await self._record(payout, payout.number, payout.method, found)
        return True
