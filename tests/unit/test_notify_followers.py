"""Notify's log followers look at each stored event once: events none of them cares about are
passed over on one look and never looked at again, however long they wait for their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Notification

from services.notify.application import NotifyApplication
from services.notify.messages.feed import CustomerFeed
from services.notify.messages.outbox import Outbox
from services.notify.platform_keys import PlatformKeyIndex
from services.notify.webhooks.deliverer import DueSchedule
from services.notify.webhooks.index import WebhookIndex
from tests.support.notify import cloud, new_refund_id, notify_app, requested

NOISE = 3000


class Unrelated(Aggregate):
    """Events of a kind no notify follower is about (idempotency keys, say, or a newer
    feature's)."""


class LookedAt:
    """Wraps the recorder's `select_notifications`: which stored ids each call had the
    database go over (after `start`, up to `stop` or the end of the log)."""

    def __init__(self, app: NotifyApplication) -> None:
        self.recorder = app.recorder
        self.select = app.recorder.select_notifications
        self.ids: set[int] = set()

    def __call__(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        head = self.recorder.max_notification_id() or 0
        first = (start or 0) + (0 if inclusive_of_start else 1)
        last = head if stop is None else min(stop, head)
        self.ids |= set(range(first, last + 1))
        return self.select(start, limit, stop, topics, inclusive_of_start=inclusive_of_start)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[NotifyApplication]:
    application = notify_app(tmp_path)
    yield application
    application.close()


def followers(app: NotifyApplication) -> dict[str, Callable[[], Any]]:
    """One look of each loop and read model that follows notify's log."""
    schedule, outbox, sms = DueSchedule(app), Outbox(app, "email"), Outbox(app, "sms")
    outbox.scan()
    sms.scan()
    index = WebhookIndex(app)
    return {
        "webhook deliverer": schedule.catch_up,
        "e-mail sender": outbox.follow,
        "sms sender": sms.follow,
        "customer feed": CustomerFeed(app).catch_up,
        "webhook endpoints": index.endpoints.catch_up,
        "webhook deliveries": index.deliveries.catch_up,
        "platform keys": PlatformKeyIndex(app).catch_up,
    }


def test_events_no_follower_wants_are_looked_at_once(app: NotifyApplication) -> None:
    assert app.handle(cloud(requested(new_refund_id()), 1))  # something some of them want
    looks = followers(app)
    for look in looks.values():
        look()
    before = app.recorder.max_notification_id()
    app.save(*[Unrelated() for _ in range(NOISE)])
    noise = set(range(before + 1, before + NOISE + 1))
    looked_at = LookedAt(app)
    app.recorder.select_notifications = looked_at  # type: ignore[method-assign]

    for look in looks.values():
        look()  # each goes over the noise once, on its way to the end of the log
    for name, look in looks.items():
        looked_at.ids.clear()
        look()
        assert not looked_at.ids & noise, f"{name} looked at the unrelated events again"

    # And what they do want still reaches them after the noise.
    refund = new_refund_id()
    assert app.handle(cloud(requested(refund), 2))
    looked_at.ids.clear()
    assert looks["e-mail sender"]() >= 1
    assert looks["customer feed"]() >= 1
    assert not looked_at.ids & noise
