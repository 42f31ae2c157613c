"""What notify publishes on refunds.notify.v1 is the deployment's choice
(REFUNDS_PUBLISHED_EVENTS): the relay then reads only the stored outcomes it publishes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from eventsourcing.utils import get_topic
from pydantic import ValidationError

from services.notify.application import NotifyApplication
from services.notify.messages.application import publishing, to_integration
from services.notify.messages.domain import Correspondence
from services.notify.settings import NotifySettings
from shared.contracts import NotificationFailedV1, NotificationSentV1
from shared.follower import LogFollower
from shared.relay import published_topics
from tests.support.notify import notify_app

AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
BOTH = {"notification.sent.v1", "notification.failed.v1"}


def correspondence() -> Correspondence:
    """One message sent (e-mail) and one given up (SMS), after the steps before them."""
    letters = Correspondence(refund_id="rf_published", tenant="acme")
    letters.record_contact(email="ann@example.com", phone="+8613800000000", locale="en")
    letters.schedule("received", {"order_id": "O-1"}, causation_id="c-1")
    letters.record_sent(
        step="received",
        channel="email",
        message_id="m-1",
        recipient_masked="a***@example.com",
        locale="en",
        template="received.email.en@1",
        sent_at=AT,
    )
    letters.record_failed(step="received", channel="sms", cause="refused", failed_at=AT)
    return letters


@pytest.fixture
def app(tmp_path: Path) -> Iterator[NotifyApplication]:
    application = notify_app(tmp_path)
    yield application
    application.close()


def test_by_default_only_failures_are_published_and_both_can_be_asked_for() -> None:
    assert NotifySettings().published == {"notification.failed.v1"}
    asked = NotifySettings(published_events="notification.sent.v1,notification.failed.v1")
    assert asked.published == BOTH
    assert publishing(BOTH) is to_integration
    mapped = [to_integration(e) for e in correspondence().collect_events()]
    assert [type(e) for e in mapped if e is not None] == [NotificationSentV1, NotificationFailedV1]


def test_failures_only_maps_and_declares_no_sent_message() -> None:
    mapping = publishing({"notification.failed.v1"})
    events = correspondence().collect_events()
    mapped = [mapping(e) for e in events]
    assert [type(e) for e in mapped if e is not None] == [NotificationFailedV1]
    wanted = published_topics(mapping)
    assert wanted is not None
    assert wanted(get_topic(Correspondence.MessageFailed))
    assert not wanted(get_topic(Correspondence.MessageSent))


async def test_a_relays_follower_reads_only_the_outcomes_published(app: NotifyApplication) -> None:
    app.save(correspondence())
    chosen = published_topics(publishing({"notification.failed.v1"}))
    nothing = published_topics(publishing(()))
    assert chosen is not None and nothing is not None

    failures = LogFollower(app, "relay:failures", choose=chosen)
    await failures.load()
    batch = await failures.next_batch(wait=1)
    assert [type(item.event) for item in batch] == [Correspondence.MessageFailed]

    silent = LogFollower(app, "relay:none", choose=nothing)
    await silent.load()
    assert await silent.next_batch(wait=0.05) == []
    assert silent.reached == failures.reached  # past every event all the same


def test_none_is_a_choice_and_an_unknown_event_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REFUNDS_PUBLISHED_EVENTS", "")
    assert NotifySettings().published == frozenset()
    monkeypatch.setenv("REFUNDS_PUBLISHED_EVENTS", "notification.failed.v1, notification.read.v1")
    with pytest.raises(ValidationError) as refused:
        NotifySettings()
    error = refused.value.errors()[0]
    assert error["loc"] == ("published_events",)
    assert "notification.read.v1" in error["msg"]
