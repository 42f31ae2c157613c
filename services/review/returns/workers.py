"""The return lifecycle's workers: the deadlines' clock, the carrier subscription and the
carrier poll. Like payout's executor, each calls the outside world outside any event
handler and records what happened afterwards, so a crash between the two only repeats the
call (a repeated subscription is Kuaidi100's 501, "already subscribed"; a repeated trail
changes nothing).

Which returns need what is read from the event log (ReturnWatch), so it survives restarts
without a timer table; a start reads what each worker's watch saved at its last checkpoint and
the log after it (`shared.checkpoints`), not the whole history.

Without a carrier configured (production before one is signed up: no key or salt), nothing
subscribes and nothing polls: a return then moves to `delivered` by no one, and only the
warehouse's receipt (allowed from in_transit) or the ship-by deadline moves it on; pushes
are refused. Without a callback URL, nothing subscribes and the poll alone tracks returns.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from services.review.returns.carriers import Carrier, PermanentCarrierError, TransientCarrierError
from services.review.returns.case import ReturnCase
from services.review.returns.desk import ShipmentNotFound
from shared.aio import every, ring_or_stop, sleep_or_stop
from shared.checkpoints import CheckpointedFold
from shared.follower import pages_after

if TYPE_CHECKING:
    from services.review.application import ReviewApplication

log = logging.getLogger(__name__)

Return: Any = ReturnCase
CARRIER_ACTOR = "carrier:kuaidi100"
# After these the return's clock, subscription and tracking have nothing more to do.
ENDS = (Return.ShipByMissed, Return.Received, Return.Withdrawn, Return.ReceiptOverdue)
Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
# A shipment is subscribed within about a second of being posted: the carrier pushes only to
# subscribers, and the first push may come soon (the poll is the slow fallback, not this).
SUBSCRIBE_INTERVAL_SECONDS = 1.0
WATCHED = ("clocked", "unsubscribed", "in_transit")  # the sets a return's entry names
# The workers that watch returns, each with a checkpoint of its own (its role's name).
RETURN_WORKERS = ("return_deadlines", "carrier_subscriber", "carrier_poller")
# The part of a stored topic that names a return case's events.
RETURN_MARKER = ":ReturnCase."


class ReturnWatch(CheckpointedFold):
    """Which returns have a running deadline, wait for a carrier subscription, or are on
    their way (to poll), kept up to date from the log. `name`: the worker's, one checkpoint
    per worker (each reads the log at its own pace)."""

    def __init__(self, app: ReviewApplication, name: str = "return_watch") -> None:
        super().__init__(app, name)
        self.clocked: set[uuid.UUID] = set()
        self.unsubscribed: set[uuid.UUID] = set()
        self.in_transit: set[uuid.UUID] = set()
        self.shipments: dict[uuid.UUID, tuple[str, str, str]] = {}  # refund, carrier, number

    def restore(self, key: uuid.UUID, entry: str) -> None:
        kept = json.loads(entry)
        for name in kept["in"]:
            getattr(self, name).add(key)
        if kept.get("shipment"):
            refund_id, carrier, number = kept["shipment"]
            self.shipments[key] = (refund_id, carrier, number)

    def entry(self, key: uuid.UUID) -> str | None:
        sets = [name for name in WATCHED if key in getattr(self, name)]
        if not sets:
            self.shipments.pop(key, None)  # nothing more to do with it: forgotten
            return None
        return json.dumps({"in": sets, "shipment": self.shipments.get(key)})

    def catch_up(self) -> None:
        self.restore_once()
        for page in pages_after(self.app.recorder, self.position, limit=500, marker=RETURN_MARKER):
            for notification in page.notifications:
                self._see(self.app.mapper.to_domain_event(notification))
            self.position = page.reached
        self.save_now_and_then()

    def _see(self, event: Any) -> None:
        found = event.originator_id
        self.changed(found)
        if isinstance(event, Return.Requested):
            self.clocked.add(found)
        elif isinstance(event, Return.Shipped):
            self.clocked.discard(found)  # the ship-by deadline no longer applies
            self.shipments[found] = (event.route["refund_id"], event.carrier, event.tracking_number)
            self.unsubscribed.add(found)
            self.in_transit.add(found)
        elif isinstance(event, Return.Subscribed):
            self.unsubscribed.discard(found)
        elif isinstance(event, Return.Delivered):
            self.in_transit.discard(found)
            self.clocked.add(found)  # the receipt deadline runs
        elif isinstance(event, ENDS):
            self.clocked.discard(found)
            self.unsubscribed.discard(found)
            self.in_transit.discard(found)


def keep_returns_on_time(app: ReviewApplication, interval: float) -> Worker:
    watch = ReturnWatch(app, RETURN_WORKERS[0])

    def step() -> int:
        watch.catch_up()
        return app.returns.tick(sorted(watch.clocked))

    return every(interval, step, what="return deadlines")


def carrier_workers(
    app: ReviewApplication,
    carrier: Carrier | None,
    *,
    callback_url: str | None,
    poll_interval: float,
) -> dict[str, Worker]:
    """The poll and subscription workers by role; none without a carrier (see the module's
    words)."""
    if carrier is None:
        log.warning("no carrier configured: returns are not tracked (see returns/workers.py)")
        return {}
    workers = {"carrier_poller": _polling(app, carrier, poll_interval)}
    if callback_url is not None:
        interval = min(SUBSCRIBE_INTERVAL_SECONDS, poll_interval)
        workers["carrier_subscriber"] = _subscribing(app, carrier, callback_url, interval)
    return workers


async def subscribe_due(
    app: ReviewApplication, carrier: Carrier, callback_url: str, watch: ReturnWatch
) -> int:
    """Subscribe every shipped return not subscribed yet; returns how many were recorded."""
    await asyncio.to_thread(watch.catch_up)
    recorded = 0
    for found in sorted(watch.unsubscribed):
        refund_id, code, number = watch.shipments[found]
        try:
            await carrier.subscribe(code, number, callback_url)
        except TransientCarrierError as error:
            log.warning("subscription of %s/%s: %s; trying again", code, number, error)
            continue
        except PermanentCarrierError as error:
            # Asking again cannot help; the poll still tracks it.
            log.error("subscription of %s/%s refused: %s", code, number, error)
            watch.unsubscribed.discard(found)
            continue
        await asyncio.to_thread(app.returns.record_subscribed, refund_id, CARRIER_ACTOR)
        watch.unsubscribed.discard(found)
        recorded += 1
    return recorded


async def poll_due(app: ReviewApplication, carrier: Carrier, watch: ReturnWatch) -> int:
    """Ask the carrier about every return on its way (the fallback for lost pushes);
    returns how many trails brought news."""
    await asyncio.to_thread(watch.catch_up)
    news = 0
    for found in sorted(watch.in_transit):
        _, code, number = watch.shipments[found]
        try:
            trail = await carrier.query(code, number)
        except (TransientCarrierError, PermanentCarrierError) as error:
            log.warning("query of %s/%s: %s", code, number, error)
            continue
        try:
            news += await asyncio.to_thread(app.returns.track, trail, actor=CARRIER_ACTOR)
        except ShipmentNotFound:
            log.error(
                "the carrier answered %s/%s for %s/%s", trail.carrier, trail.number, code, number
            )
    return news


def _subscribing(
    app: ReviewApplication, carrier: Carrier, callback_url: str, interval: float
) -> Worker:
    watch = ReturnWatch(app, RETURN_WORKERS[1])

    async def run(stop: asyncio.Event) -> None:
        bell = app.appended
        while not stop.is_set():
            rings = bell.rings
            try:
                await subscribe_due(app, carrier, callback_url, watch)
            except Exception:
                log.exception("carrier subscriptions failed; retrying")
            if watch.unsubscribed:  # the carrier turned some down for now: ask again soon
                await sleep_or_stop(stop, interval)
            else:  # only a shipment stored since can need a subscription
                await ring_or_stop(bell, rings, stop, bell.patience(interval), _about_returns)

    return run


def _about_returns(topic: str) -> bool:
    return RETURN_MARKER in topic


def _polling(app: ReviewApplication, carrier: Carrier, interval: float) -> Worker:
    watch = ReturnWatch(app, RETURN_WORKERS[2])

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            await sleep_or_stop(stop, interval)  # pushes come first; the poll is the fallback
            try:
                await poll_due(app, carrier, watch)
            except Exception:
                log.exception("carrier poll failed; retrying")

    return run
