"""The customers' in-app feed: one row per in-app message, kept from notify's own log.

A row is written once from the `MessageSent` event of an in-app message (which carries
the title and body as the customer sees them) and never changes; the table can be
rebuilt from the log at any time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import Notification

from services.notify.follow import TopicReadModel, stored_topics
from services.notify.messages import domain
from services.notify.messages.domain import Correspondence
from services.notify.messages.steps import IN_APP, step_of
from shared.readmodel import sortable

COLUMNS = (
    "notification_id",
    "tenant",
    "customer_id",
    "refund_id",
    "step",
    "locale",
    "template",
    "title",
    "body",
    "created_at",
    "version",
)


class CustomerFeed(TopicReadModel):
    name = "customer_feed"
    schema = (
        "notification_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, customer_id TEXT NOT NULL, "
        "refund_id TEXT NOT NULL, step TEXT NOT NULL, locale TEXT NOT NULL, "
        "template TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL, "
        "created_at TEXT NOT NULL, version BIGINT NOT NULL"
    )
    columns = COLUMNS
    changing = ("version",)
    time_column = "created_at"
    topic_marker = ":Correspondence.MessageSent"
    topics = stored_topics([Correspondence.MessageSent], domain.EARLIER_TOPICS)
    cursor_scope = frozenset({"tenant", "customer_id"})

    def rows(self, notifications: Sequence[Notification]) -> list[tuple[Any, ...]]:
        """Rows straight from the events (no aggregate is loaded): sent in-app messages only."""
        events: list[Any] = [self.app.mapper.to_domain_event(n) for n in notifications]
        return [_row(e) for e in events if e.channel == IN_APP and e.customer_id]

    def page(
        self,
        tenant: str,
        customer_id: str,
        *,
        limit: int,
        starting_after: str | None = None,
        ending_before: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        # An unknown cursor raises UnknownCursor, a 422 naming it (shared.http).
        found, has_more = self.fetch(
            {"tenant": tenant, "customer_id": customer_id},
            limit=limit,
            starting_after=starting_after,
            ending_before=ending_before,
        )
        return [dict(zip(COLUMNS, row, strict=True)) for row in found], has_more


def _row(event: Any) -> tuple[Any, ...]:
    sent: Any = event
    return (
        sent.message_id,  # the in-app message's id is its notification id
        sent.tenant,
        sent.customer_id,
        sent.refund_id,
        step_of(sent.step),  # a later occurrence is a row of its own, under the same step
        sent.locale,
        sent.template,
        sent.title or "",
        sent.body or "",
        sortable(sent.sent_at),
        sent.originator_version,
    )
