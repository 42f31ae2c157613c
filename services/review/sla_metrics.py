"""Review's SLA on /metrics: open cases and the overdue among them, and the breaches recorded.

Store-wide figures, the same from every replica (alert on their max, not their sum). They are
read when scraped: the queue is caught up first; the breaches are counted from the log,
only the events recorded since the last scrape (filtered by topic in SQL), and since the
count's last checkpoint at a start.
"""

from __future__ import annotations

import threading
import uuid

from services.review.application import ReviewApplication
from services.review.queue import ReviewQueue
from shared.checkpoints import CheckpointedFold
from shared.follower import pages_after
from shared.metrics import Metrics

BREACHES = ":ReviewCase.SlaBreached"  # in the events' topics
TOTAL = uuid.UUID(int=0)  # the one entry of the count's checkpoint


class BreachCount(CheckpointedFold):
    """SLA breaches in review's log since it began, each counted once; the count and where it
    was taken are checkpointed, so a start does not count the whole history again."""

    def __init__(self, app: ReviewApplication) -> None:
        super().__init__(app, "sla_breaches")
        self.total = 0
        self._lock = threading.Lock()  # scrapes may overlap

    def restore(self, key: uuid.UUID, entry: str) -> None:
        self.total = int(entry)

    def entry(self, key: uuid.UUID) -> str | None:
        return str(self.total)

    def catch_up(self) -> int:
        with self._lock:
            self.restore_once()
            for page in pages_after(self.app.recorder, self.position, limit=1000, marker=BREACHES):
                self.total += len(page.notifications)
                self.position = page.reached
                self.changed(TOTAL)
            self.save_now_and_then()
            return self.total


def sla_metrics(metrics: Metrics, queue: ReviewQueue, app: ReviewApplication) -> None:
    breaches = BreachCount(app)

    def open_cases() -> dict[tuple[str, str], tuple[int, int]]:
        return queue.count_open(app.now())

    metrics.gauge(
        "refunds_review_cases_open",
        "Open review cases now (pending or awaiting evidence), by state and tier.",
        lambda: {key: float(n) for key, (n, _) in open_cases().items()},
        labels=["state", "tier"],
    )
    metrics.gauge(
        "refunds_review_cases_overdue",
        "Pending cases past their SLA deadline whose breach the SLA clock has not yet"
        " recorded (it escalates them on its next tick): above 0 for long, the clock is behind"
        " or not running.",
        lambda: {(): float(sum(late for _, late in open_cases().values()))},
    )
    metrics.counter(
        "refunds_review_sla_breaches",
        "SLA breaches the SLA clock has recorded (each escalates a case one tier), all time.",
        lambda: {(): float(breaches.catch_up())},
    )
