"""Tells this process's log followers when other processes append to the log.

A process's own appends ring its `appended` bell (ServiceApplication._record), but a replica
of the service, or a tool writing to the same store, rings nothing here. Every loop that
follows the log (relay, executor, senders, read models, the sealer) used to look at it every
second or two for those appends: on PostgreSQL about 18 reads a second across an idle
stack's four services. One watch per process now looks at the log's end instead, and rings
the bell when it moved past what this process appended itself; the loops then only look
when rung, or rarely as a safety net (`Doorbell.patience`).
"""

from __future__ import annotations

import asyncio
import logging

from shared.aio import sleep_or_stop
from shared.application import ServiceApplication

log = logging.getLogger(__name__)

# How often the watch looks at the log's end: how long, at most, an event another process
# stored waits before this one's followers look (what they waited before the watch).
LOOK_SECONDS = 1.0
# A watch vouches for this many of its looks: one that fails (the store is down) or stops
# leaves the followers to their own pace again within that.
VOUCHED_LOOKS = 3


class LogWatch:
    """Looks at the end of `app`'s log every `seconds`; rings `app.appended` (about anything)
    when it lies past both its last look and this process's own latest append."""

    def __init__(self, app: ServiceApplication, seconds: float = LOOK_SECONDS) -> None:
        self.app = app
        self.seconds = seconds
        self.seen = 0  # the log's end at the last look
        self.rang = 0  # how often it rang, for tests and curiosity

    def look(self) -> bool:
        """One look (blocking); whether it rang."""
        end = int(self.app.recorder.max_notification_id() or 0)
        others = end > max(self.seen, self.app.last_appended)
        self.seen = end
        if others:
            self.rang += 1
            self.app.appended.ring()
        self.app.appended.watched_for(self.seconds * VOUCHED_LOOKS)
        return others

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.app.call(self.look)
            except Exception:  # the store may be briefly down: the followers poll meanwhile
                log.warning("log watch: could not look at the log's end", exc_info=True)
            await sleep_or_stop(stop, self.seconds)
