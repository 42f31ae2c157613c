"""The SLA clock's worker: finds cases whose reminder or deadline is due and acts on them.

Which cases have a running clock is read from the event log (schedules start it;
decisions, evidence requests and withdrawals stop it), so it survives restarts
without a timer table: a start reads the set saved at its last checkpoint and the log after
it (`shared.checkpoints`), never the whole history again. A return's deadlines (ship-by,
receipt-by) run on the same interval, read the same way, in services/review/returns/workers.py
(`keep_returns_on_time`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from services.review.application import ReviewApplication
from services.review.domain import ReviewCase
from shared.aio import every
from shared.checkpoints import CheckpointedFold
from shared.follower import pages_after
from shared.runtime import Worker

Case: Any = ReviewCase
# An evidence request keeps the case on the clock: the customer has a deadline too.
STOPS = (Case.Approved, Case.Rejected, Case.Withdrawn)
STOPS_TOO = (Case.CompensationOffered,)
RUNNING = "running"  # a case's checkpoint entry while its clock runs


class RunningClocks(CheckpointedFold):
    """The ids of cases whose SLA clock runs, kept up to date from the log, and when each
    next needs a look. Loading every running case on every tick cost ~0.14 CPU-ms a case
    (1.4 CPU-s every 5 s with 10,000 open cases, bench/console_queue.py), slowing the queue
    page beside it; now a case is loaded once after each of its events, then not again until
    its clock can ask for something (`case_rules.clock_wakes_at`)."""

    def __init__(self, app: ReviewApplication) -> None:
        super().__init__(app, "sla_clock")
        self.running: set[uuid.UUID] = set()
        # Absent: look at the case on the next tick; None: not until another event of it.
        self.wakes: dict[uuid.UUID, datetime | None] = {}

    def restore(self, key: uuid.UUID, entry: str) -> None:
        self.running.add(key)  # restored cases are looked at on the first tick

    def entry(self, key: uuid.UUID) -> str | None:
        return RUNNING if key in self.running else None

    def catch_up(self) -> set[uuid.UUID]:
        self.restore_once()
        # Only the cases' events are read (filtered in SQL), each once.
        for page in pages_after(self.app.recorder, self.position, limit=500, marker=":ReviewCase."):
            for notification in page.notifications:
                event = self.app.mapper.to_domain_event(notification)
                if isinstance(event, (Case.SlaScheduled, Case.EvidenceRequested)):
                    self.running.add(event.originator_id)
                    self.changed(event.originator_id)
                elif isinstance(event, STOPS + STOPS_TOO):
                    self.running.discard(event.originator_id)
                    self.changed(event.originator_id)
                self.wakes.pop(event.originator_id, None)  # changed: look at it again
            self.position = page.reached
        self.save_now_and_then()
        return self.running

    def due(self, now: datetime) -> list[uuid.UUID]:
        """The running cases whose clock may ask for something at `now`, in id order."""
        self.catch_up()
        self.wakes = {case: at for case, at in self.wakes.items() if case in self.running}
        return sorted(
            case
            for case in self.running
            if case not in self.wakes or ((at := self.wakes[case]) is not None and at <= now)
        )


def tick_due(app: ReviewApplication, clocks: RunningClocks) -> int:
    """One turn of the SLA clock: act on the cases that are due, learn when the rest wake."""
    return app.tick(clocks.due(app.now()), clocks.wakes)


def keep_time(app: ReviewApplication, interval: float) -> Worker:
    clocks = RunningClocks(app)
    return every(interval, lambda: tick_due(app, clocks), what="SLA clock")
