"""After seeding, per service (each in a process of its own, as they share nothing): its
ledger sealed, its read models caught up, and the saved positions of the followers that act
on new events (the relay, payout's executor and poller) moved to the log's end, so that the
next stack neither publishes nor redoes what was seeded.

Notify's senders and webhook schedule and review's clocks, return workers and breach count
keep checkpoints (shared/checkpoints.py) rather than positions: they are brought to the log's
end here, as the service's first start would bring them (notify's reads its whole log once:
minutes at 100,000 refunds, which would otherwise be spent by the stack under measurement).
The relays publish their whole log again when they find the dev broker empty (as after
every restart of `refunds dev`): the consumers' seeded tracking rows make that a no-op."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any

from refunds.stores import Stores, correlate, open_service, read_models
from services.notify.messages.outbox import Outbox
from services.notify.webhooks.deliverer import DueSchedule
from services.review.returns.workers import RETURN_WORKERS, ReturnWatch
from services.review.sla import RunningClocks
from services.review.sla_metrics import BreachCount
from shared.kafka import TOPICS
from shared.ledger import Ledger
from shared.relay import position_name

# Followers with a saved position that would act on seeded events (shared/follower.py).
WORKERS = {"payout": ("executor", "poller")}


def finish(
    stores: Stores, starts: dict[str, int], *, processes: int, topic_prefix: str = ""
) -> dict[str, dict[str, int]]:
    """Finish every service; `starts` are their logs' ends before seeding. Per service, what
    was done."""
    services = list(starts)
    if processes <= 1:
        done = [finish_service(stores, s, starts[s], topic_prefix) for s in services]
    else:
        with ProcessPoolExecutor(max_workers=processes) as pool:
            done = list(
                pool.map(
                    finish_service,
                    [stores] * len(services),
                    services,
                    [starts[s] for s in services],
                    [topic_prefix] * len(services),
                )
            )
    return dict(zip(services, done, strict=True))


def finish_service(stores: Stores, service: str, start: int, topic_prefix: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with open_service(stores, service) as app:
        counts["ledger sealed"] = Ledger(app, correlate=correlate(service)).seal()
        for model in read_models(service):
            counts[f"{model.__name__} read"] = model(app).catch_up()
        end = int(app.recorder.max_notification_id() or 0)
        counts["checkpoints at the log's end"] = sum(
            fold.checkpoints.load()[0] == end for fold in checkpointed(app, service)
        )
        for name in (position_name(topic_prefix + TOPICS[service]), *WORKERS.get(service, ())):
            if app.positions.load(name) < start:
                # It had not reached what was stored before seeding: say so, rather than
                # skip that work silently.
                counts[f"{name} was behind"] = 1
            app.positions.save(name, end)
        counts["log end"] = end
    return counts


def checkpointed(app: Any, service: str) -> list[Any]:
    """The service's checkpointed folds, each caught up with its log and saved."""
    if service == "notify":
        outboxes = [Outbox(app, channel) for channel in ("email", "sms")]
        for outbox in outboxes:
            outbox.scan()  # an outbox reads with `scan`, not `catch_up`
            outbox.save()
        folds: list[Any] = [DueSchedule(app)]
    elif service == "review":
        outboxes, folds = [], [RunningClocks(app), BreachCount(app)]
        folds += [ReturnWatch(app, name) for name in RETURN_WORKERS]
    else:
        return []
    for fold in folds:
        fold.catch_up()
        fold.save()
    return outboxes + folds
