"""Fill a stopped stack's stores with the history of many completed refunds, fast (issue 20:
cost measured at 100,000 refunds of history).

Each seeded refund goes through the services' own code, as if the stack had run it: intake
records the platform's request; the pipeline (bench/history/pipeline.py) publishes each
service's log as its relay would and has the consuming services react, with their tracking
rows; payout's executor and notify's senders are played by bench/history/effects.py. Work is
done in batches of refunds, each service storing a batch's round of reactions in one
transaction, by several processes at once, each with refunds of its own. Afterwards
(bench/history/finish.py) the ledgers are sealed, the read models caught up, and the
positions of the relays and payout's workers moved to their log's end.

Use:  python -m bench.history --data-dir DIR --refunds N
      python -m bench.history --postgres URL --schema-prefix P --refunds N
"""

from __future__ import annotations

import multiprocessing
import secrets
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from bench.history.effects import send_messages, settle_payouts
from bench.history.finish import finish
from bench.history.pipeline import Seat, deliver, publish, rounds
from bench.history.requests import request_refunds
from bench.history.seats import open_seats
from refunds.stores import Stores
from shared.contracts import CloudEvent

BATCH = 500  # refunds per batch: each service stores a batch's round in one transaction


# Processes seeding at once, each with refunds of its own: on PostgreSQL one per core of the
# machine issue 20 measures on (1,000 refunds: 14.6 s with two, 43.5 s with one, on a loaded
# machine); SQLite has one writer, and two processes gained nothing there (18.4 s and 18.8 s;
# 22.1 s and 57.0 s, waiting for its lock).
def default_processes(stores: Stores) -> int:
    return PROCESSES if stores.database_url else 1


PROCESSES = 2  # the cores of the machine issue 20 measures on


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
    processes: int | None = None,
) -> Seeded:
    """Store `refunds` completed (approved, paid, told) refunds of the dev tenant in `stores`,
    which no running stack may be using; `progress` is called with each batch's size."""
    started = time.perf_counter()
    processes = processes or default_processes(stores)
    run = secrets.token_hex(3).upper()
    with open_seats(stores, record_policy=True) as seats:
        starts = {name: seat.start for name, seat in seats.items()}
    parts = [range(p, refunds, processes) for p in range(processes)]
    seeded = Seeded()
    counts: dict[str, Counter[str]] = {name: Counter() for name in starts}
    context = multiprocessing.get_context("spawn")
    reports: Any = context.Queue()
    # One process at a time opens the stores: PostgreSQL refuses two sessions creating the
    # same tables at once ("tuple concurrently updated"), even when they exist.
    opening: Any = context.Lock()
    workers = [
        context.Process(target=_seed_part, args=(stores, run, part, batch, reports, opening))
        for part in parts
        if part
    ]
    for worker in workers:
        worker.start()
    finished = 0
    while finished < len(workers):
        kind, value = reports.get()
        if kind == "batch":
            seeded.refunds += value
            if progress is not None:
                progress(value)
        elif kind == "done":
            finished += 1
            seeded.refund_ids += value[0]
            for name, part_counts in value[1].items():
                counts[name].update(part_counts)
        else:
            for worker in workers:
                worker.kill()
            raise RuntimeError(f"a seeding process failed:\n{value}")
    for worker in workers:
        worker.join()
    # The services' stores are apart (files or schemas): finishing them in parallel waits
    # for no lock.
    for name, done in finish(stores, starts, processes=PROCESSES).items():
        counts[name].update(done)
    seeded.counts = {name: dict(c) for name, c in counts.items()}
    seeded.seconds = time.perf_counter() - started
    return seeded


def _seed_part(
    stores: Stores, run: str, numbers: range, batch: int, reports: Any, opening: Any
) -> None:
    """One process's share: the refunds `numbers`, a batch at a time."""
    try:
        refund_ids: list[str] = []
        with ExitStack() as stack:
            with opening:
                seats = stack.enter_context(open_seats(stores))
            for first in range(0, len(numbers), batch):
                part = numbers[first : first + batch]
                created = request_refunds(seats["intake"], run, part)
                _settle(seats, set(created))
                for seat in seats.values():
                    seat.kept.clear()  # a batch's refunds are done with
                seats["intake"].app.keys.forget_cache()  # and so are its customers' keys
                refund_ids += created
                reports.put(("batch", len(part)))
            for seat in seats.values():
                seat.count("aggregate look-ups that read the store", seat.kept.loads)
            counts = {name: dict(seat.counts) for name, seat in seats.items()}
        reports.put(("done", (refund_ids, counts)))
    except BaseException:
        import traceback

        reports.put(("failed", traceback.format_exc()))
        raise


def _settle(seats: dict[str, Seat], refund_ids: set[str]) -> None:
    """Pass the messages about `refund_ids` between the services until none is left to pass
    (the other processes' messages are theirs to pass)."""
    while True:
        inboxes: dict[str, list[CloudEvent]] = {name: [] for name in seats}
        for source in seats.values():
            if not any(source.service in seat.consumes for seat in seats.values()):
                continue  # notify's topic: none of the four reads it (finish moves its relay on)
            messages = [m for m in publish(source) if m.subject in refund_ids]
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
