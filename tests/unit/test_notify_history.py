"""Events stored by earlier releases name notify's aggregates where they were defined then
(`services.notify.domain`, `services.notify.endpoints`): they keep loading, and every log
follower still finds them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from eventsourcing.utils import get_topic, resolve_topic

from services.notify.follow import events_of
from services.notify.messages import domain
from services.notify.messages.domain import Correspondence
from services.notify.messages.feed import CustomerFeed
from services.notify.messages.outbox import Outbox
from services.notify.webhooks import deliveries, endpoints
from services.notify.webhooks.commands import endpoint_public_id
from services.notify.webhooks.deliverer import DueSchedule
from services.notify.webhooks.deliveries import WebhookDelivery
from services.notify.webhooks.endpoints import EndpointDirectory, WebhookEndpoint
from services.notify.webhooks.index import WebhookIndex
from tests.support.notify import cloud, new_refund_id, notify_app, requested

# Where each aggregate was defined up to this release; its events were stored under these.
EARLIER = {
    "services.notify.domain:Correspondence": Correspondence,
    "services.notify.endpoints:WebhookEndpoint": WebhookEndpoint,
    "services.notify.endpoints:EndpointDirectory": EndpointDirectory,
    "services.notify.endpoints:WebhookDelivery": WebhookDelivery,
}


@pytest.mark.parametrize("old", sorted(EARLIER))
def test_every_old_topic_resolves_to_the_class_of_today(old: str) -> None:
    aggregate = EARLIER[old]
    assert resolve_topic(old) is aggregate
    for event in events_of(aggregate):
        assert resolve_topic(f"{old}.{event.__name__}") is event


def test_each_moved_aggregate_declares_where_it_was() -> None:
    declared = {**domain.EARLIER_TOPICS, **endpoints.EARLIER_TOPICS, **deliveries.EARLIER_TOPICS}
    assert declared == EARLIER


def _as_stored_by_an_earlier_release(store: Path) -> int:
    """Rewrite every stored topic (and each creation's `originator_topic`) to the old modules."""
    moved = {get_topic(cls): old for old, cls in EARLIER.items()}
    rewritten = 0
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT rowid, topic, state FROM stored_events").fetchall()
        for rowid, topic, state in rows:
            aggregate, _, event = topic.rpartition(".")
            if aggregate not in moved:
                continue
            data = json.loads(state)
            if "originator_topic" in data:
                data["originator_topic"] = moved[data["originator_topic"]]
            db.execute(
                "UPDATE stored_events SET topic = ?, state = ? WHERE rowid = ?",
                (f"{moved[aggregate]}.{event}", json.dumps(data).encode(), rowid),
            )
            rewritten += 1
    return rewritten


def test_a_store_of_an_earlier_release_keeps_loading_and_is_followed(tmp_path: Path) -> None:
    app = notify_app(tmp_path)
    app.webhooks.allow_private = True
    endpoint, _ = app.webhooks.register_endpoint(
        tenant="acme", url="http://127.0.0.1:9/hook", event_types=["*"], actor="tenant:acme"
    )
    refund = new_refund_id()
    message = cloud(requested(refund), 1)
    assert app.handle(message)
    app.close()
    assert _as_stored_by_an_earlier_release(tmp_path / "notify.sqlite") > 5

    app = notify_app(tmp_path)
    try:
        with sqlite3.connect(tmp_path / "notify.sqlite") as db:
            topics = {topic for (topic,) in db.execute("SELECT topic FROM stored_events")}
        assert {t.partition(":")[0] for t in topics} >= {
            "services.notify.domain",
            "services.notify.endpoints",
        }
        correspondence = app.messages.correspondence(Correspondence.create_id(refund))
        assert [(d.step, d.channel) for d in correspondence.pending()] == [("received", "email")]
        outbox = Outbox(app, "email")
        assert outbox.scan() == []
        assert list(outbox.due) == [correspondence.id]
        feed = CustomerFeed(app)
        feed.catch_up()
        rows, _ = feed.page("acme", "C-42", limit=10)
        assert [row["step"] for row in rows] == ["received"]
        schedule = DueSchedule(app)
        assert schedule.catch_up() >= 1
        delivery_id = WebhookDelivery.create_id(endpoint.id, message.id)
        assert list(schedule.due) == [delivery_id]
        index = WebhookIndex(app)
        index.catch_up()
        assert index.endpoints.page("acme", limit=10).ids == [endpoint.id]
        assert index.deliveries.page("acme", endpoint.id, limit=10).ids == [delivery_id]
        found = app.webhooks.endpoint_for("acme", endpoint_public_id(endpoint.id))
        assert found.url == "http://127.0.0.1:9/hook"
    finally:
        app.close()
