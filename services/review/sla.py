"""The SLA clock's worker: finds cases whose reminder or deadline is due and acts on them.

Which cases have a running clock is read from the event log (schedules start it;
decisions, evidence requests and withdrawals stop it), so it survives restarts
without a timer table: on start it reads the log from the beginning. A return's deadlines
(ship-by, receipt-by) run on the same interval, read the same way, in
services/review/returns/workers.py (`keep_returns_on_time`).
"""

from __future__ import annotations

import uuid
from typing import Any

from services.review.application import ReviewApplication
from services.review.domain import ReviewCase
from shared.aio import every
from shared.follower import pages_after
from shared.runtime import Worker

Case: Any = ReviewCase
# An evidence request keeps the case on the clock: the customer has a deadline too.
STOPS = (Case.Approved, Case.Rejected, Case.Withdrawn)
STOPS_TOO = (Case.CompensationOffered,)


class RunningClocks:
    """The ids of cases whose SLA clock runs, kept up to date from the log."""

    def __init__(self, app: ReviewApplication) -> None:
        self.app = app
        self.position = 0
        self.running: set[uuid.UUID] = set()

    def catch_up(self) -> set[uuid.UUID]:
        # Only the cases' events are read (filtered in SQL), each once.
        for page in pages_after(self.app.recorder, self.position, limit=500, marker=":ReviewCase."):
            for notification in page.notifications:
                event = self.app.mapper.to_domain_event(notification)
                if isinstance(event, (Case.SlaScheduled, Case.EvidenceRequested)):
                    self.running.add(event.originator_id)
                elif isinstance(event, STOPS + STOPS_TOO):
                    self.running.discard(event.originator_id)
            self.position = page.reached
        return self.running


def keep_time(app: ReviewApplication, interval: float) -> Worker:
    clocks = RunningClocks(app)
    return every(interval, lambda: app.tick(sorted(clocks.catch_up())), what="SLA clock")
