"""Resolves `processing` payouts whose completion callback never came, by status query."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime

from eventsourcing.utils import get_topic

from services.payout.adapters import Routes, order_of
from services.payout.application import PayoutApplication
from services.payout.domain import Payout
from services.payout.providers.base import PermanentProviderError, TransientProviderError
from shared.aio import sleep_or_stop
from shared.follower import LogFollower

log = logging.getLogger(__name__)

# The events after which a payout is `processing`: accepted by the provider, or re-routed
# by WeChat Pay at finance's request (an abnormal refund).
WATCH_EVENTS = ("Accepted", "AbnormalRefundRequested")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class StatusPoller:
    """Watches payouts the provider accepted; queries each once it has waited `after_s`.

    The candidates come from the log (`Accepted` events, and finance's requests of an
    abnormal refund, which leave the payout `processing` too; read from the start on
    each run, so nothing is forgotten across restarts); a payout leaves the set once it
    is settled, by callback or by this poller.
    """

    app: PayoutApplication
    routes: Routes
    _: KW_ONLY
    after_s: float = 30.0
    interval_s: float = 5.0
    clock: Callable[[], datetime] = _now
    watching: set[uuid.UUID] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        topics = [get_topic(getattr(Payout, name)) for name in WATCH_EVENTS]
        self.follower = LogFollower(self.app, "poller", topics=topics)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll_once()
            except Exception:  # store or gateway trouble: try again next round
                log.exception("payout poller failed; retrying")
            await sleep_or_stop(stop, self.interval_s)

    async def poll_once(self) -> int:
        """Query every due `processing` payout once; how many got settled."""
        while batch := await self.follower.next_batch(wait=0):
            self.watching.update(e.event.originator_id for e in batch)
            self.follower.position = batch[-1].position  # in memory: re-read on restart
        settled = 0
        for payout_id in list(self.watching):
            payout = await asyncio.to_thread(self.app.payout, payout_id)
            if payout.status != "processing":
                self.watching.discard(payout_id)
                continue
            accepted = payout.accepted_at or self.clock()
            if (self.clock() - accepted).total_seconds() < self.after_s:
                continue
            try:
                route = await asyncio.to_thread(
                    self.routes.sent_route, payout, payout.number, payout.method
                )
                found = await route.query(order_of(payout))
            except (TransientProviderError, PermanentProviderError) as error:
                log.warning("status query of %s failed: %s", payout.number, error)
                continue
            if found is None or found.status == "processing":
                continue
            payout = await asyncio.to_thread(
                self.app.record_receipt,
                payout_id,
                payout.number,
                payout.method,
                found,
                self.clock(),
            )
            if not payout.is_pending:
                self.watching.discard(payout_id)
                settled += 1
        return settled
