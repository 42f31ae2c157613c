"""After seeding: each service's ledger sealed, its read models caught up, and the saved
positions of the followers that act on new events (the relay, payout's executor and poller)
moved to the log's end, so that the next stack neither publishes nor redoes what was seeded.

Notify's senders, webhook deliverer and review's clocks keep no position: they read their
log from its start when they start, and find every seeded message sent and every case
decided (their start-up cost grows with history; issue 20 asks for that separately)."""

from __future__ import annotations

from bench.history.pipeline import Seat
from refunds.stores import Stores, correlate, read_models
from shared.kafka import TOPICS
from shared.ledger import Ledger
from shared.relay import position_name

# Followers with a saved position that would act on seeded events (shared/follower.py).
WORKERS = {"payout": ("executor", "poller")}


def finish(stores: Stores, seats: dict[str, Seat], topic_prefix: str = "") -> None:
    for service, seat in seats.items():
        app = seat.app
        seat.count("ledger sealed", Ledger(app, correlate=correlate(service)).seal())
        for model in read_models(service):
            seat.count(f"{model.__name__} read", model(app).catch_up())
        end = int(app.recorder.max_notification_id() or 0)
        for name in (position_name(topic_prefix + TOPICS[service]), *WORKERS.get(service, ())):
            if app.positions.load(name) < seat.start:
                # It had not reached what was stored before seeding: report it, do not skip
                # that work silently.
                seat.count(f"{name} was behind", 1)
            app.positions.save(name, end)
        seat.count("log end", end)
