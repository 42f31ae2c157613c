"""Fill a stopped stack's stores with the history of many completed refunds, fast (issue 20:
cost measured at 100,000 refunds of history).

Each seeded refund goes through the services' own code, as if the stack had run it: intake
records the platform's request; the pipeline (bench/history/pipeline.py) publishes each
service's log as its relay would and has the consuming services react, with their tracking
rows; payout's executor and notify's senders are played by bench/history/effects.py. Work is
done in batches of refunds, each service storing a batch's round of reactions in one
transaction. Afterwards (bench/history/finish.py) the ledgers are sealed, the read models
caught up, and the positions of the relays and payout's workers moved to their log's end:
the next stack publishes, pays and sends nothing of what was seeded.

Use:  python -m bench.history --data-dir DIR --refunds N
      python -m bench.history --postgres URL --schema-prefix P --refunds N
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field

from bench.history.effects import send_messages, settle_payouts
from bench.history.finish import finish
from bench.history.pipeline import Seat, deliver, publish, rounds
from bench.history.requests import request_refunds
from refunds.stores import Stores
from shared.contracts import CloudEvent

BATCH = 500  # refunds per batch: each service stores a batch's round in one transaction


@dataclass
class Seeded:
    """What a seeding stored, per service, and how long it took."""

    refunds: int = 0
    seconds: float = 0.0
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    refund_ids: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.refunds / self.seconds if self.seconds else 0.0


def seed_history(
    stores: Stores,
    refunds: int,
    *,
    progress: Callable[[int], None] | None = None,
    batch: int = BATCH,
) -> Seeded:
    """Store `refunds` completed (approved, paid, told) refunds of the dev tenant in `stores`,
    which no running stack may be using; `progress` is called with each batch's size."""
    from bench.history.seats import open_seats

    started = time.perf_counter()
    seeded = Seeded()
    run = secrets.token_hex(3).upper()
    with ExitStack() as stack:
        seats = stack.enter_context(open_seats(stores))
        for first in range(0, refunds, batch):
            numbers = range(first, min(first + batch, refunds))
            seeded.refund_ids += request_refunds(seats["intake"].app, run, numbers)  # type: ignore[arg-type]
            _settle(seats)
            seeded.refunds += len(numbers)
            if progress is not None:
                progress(len(numbers))
        finish(stores, seats)
        seeded.counts = {name: dict(seat.counts) for name, seat in seats.items()}
    seeded.seconds = time.perf_counter() - started
    return seeded


def _settle(seats: dict[str, Seat]) -> None:
    """Pass messages between the services until none is left to pass."""
    while True:
        inboxes: dict[str, list[CloudEvent]] = {name: [] for name in seats}
        for source in seats.values():
            messages = publish(source)
            for seat in seats.values():
                if source.service in seat.consumes:
                    inboxes[seat.service] += messages
        if not any(inboxes.values()):
            return
        for name, messages in inboxes.items():
            seat = seats[name]
            for round_ in rounds(messages):
                changed = deliver(seat, round_)
                if name == "payout":
                    settle_payouts(seat, changed)
                elif name == "notify":
                    send_messages(seat, changed)
