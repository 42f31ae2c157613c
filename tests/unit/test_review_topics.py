"""Review's events stored by earlier releases still load after their module moved: every
old topic resolves to the class that now defines it, and a stored event under an old topic
is read back as that class."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from eventsourcing.utils import resolve_topic

from services.review.application import ReviewApplication
from services.review.policy_document import default_policy
from services.review.policy_versions import PolicyBook

# Every topic a release before the rename could have stored, and the class it means now.
OLD_TOPICS = {
    "services.review.policies:PolicyBook": PolicyBook,
    "services.review.policies:PolicyBook.Started": PolicyBook.Started,
    "services.review.policies:PolicyBook.Published": PolicyBook.Published,
}


@pytest.mark.parametrize(("topic", "now"), OLD_TOPICS.items())
def test_an_old_topic_resolves_to_the_moved_class(topic: str, now: type) -> None:
    assert resolve_topic(topic) is now


def test_a_policy_book_stored_under_its_old_topics_loads() -> None:
    app = ReviewApplication(default_policy())
    try:
        book = PolicyBook()
        book.publish(
            version="2026-11-01",
            digest="0" * 64,
            document={"version": "2026-11-01"},
            by="system:shipped",
            at=datetime(2026, 11, 1, tzinfo=UTC),
        )
        stored = [app.mapper.to_stored_event(e) for e in book.collect_events()]
        old = [replace(s, topic=s.topic.replace("policy_versions", "policies")) for s in stored]
        assert [s.topic for s in old] == [
            "services.review.policies:PolicyBook.Started",
            "services.review.policies:PolicyBook.Published",
        ]
        events = [app.mapper.to_domain_event(s) for s in old]
        assert [type(e) for e in events] == [PolicyBook.Started, PolicyBook.Published]
        loaded = None
        for event in events:
            loaded = event.mutate(loaded)
        assert isinstance(loaded, PolicyBook) and isinstance(loaded.id, uuid.UUID)
        assert [v["version"] for v in loaded.versions] == ["2026-11-01"]
    finally:
        app.close()
