"""Webhook read models: a tenant's endpoints and each endpoint's delivery log, newest first.

Rows are kept from notify's own event log (see shared/readmodel.py) and give the ids of a page;
the views are rendered from the aggregates themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from services.notify.follow import TopicReadModel, events_of, stored_topics
from services.notify.webhooks import deliveries, endpoints
from services.notify.webhooks.deliveries import WebhookDelivery
from services.notify.webhooks.endpoints import DISABLE_REASONS, WebhookEndpoint
from shared.application import ServiceApplication
from shared.readmodel import sortable, values
from shared.sql import reading


@dataclass(frozen=True)
class Page:
    ids: list[uuid.UUID]
    has_more: bool


class _Ids(TopicReadModel):
    """A list whose rows are keyed by aggregate id: a page is the ids to show."""

    def ids(self, equal: dict[str, Any], limit: int, starting_after: uuid.UUID | None) -> Page:
        after = str(starting_after) if starting_after else None
        found, has_more = self.fetch(equal, limit=limit, starting_after=after)
        return Page([uuid.UUID(str(row[0])) for row in found], has_more)


class EndpointIndex(_Ids):
    # v2 added why an endpoint is disabled (for /metrics): a new name is a new table, built
    # from the log from the start (positions are kept per name).
    name = "webhook_endpoint_index_v2"
    schema = (
        "endpoint_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at TEXT NOT NULL, "
        "deleted INTEGER NOT NULL, disabled_reason TEXT, version BIGINT NOT NULL"
    )
    columns = ("endpoint_id", "tenant", "created_at", "deleted", "disabled_reason", "version")
    changing = ("deleted", "disabled_reason", "version")
    time_column = "created_at"
    topic_marker = ":WebhookEndpoint."
    topics = stored_topics(events_of(WebhookEndpoint), endpoints.EARLIER_TOPICS)
    cursor_scope = frozenset({"tenant"})

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        e: WebhookEndpoint = aggregate
        created = sortable(e.created_on)
        return (str(e.id), e.tenant, created, int(e.deleted), e.disabled_reason, e.version)

    def page(self, tenant: str, *, limit: int, starting_after: uuid.UUID | None = None) -> Page:
        return self.ids({"tenant": tenant, "deleted": 0}, limit, starting_after)

    def count_disabled(self) -> dict[str, int]:
        """Endpoints (not deleted) disabled now, by why: every reason, 0 when none."""
        self.catch_up()
        with reading(self._datastore) as db:
            # The table name is the read model's own; nothing here comes from a request.
            db.execute(
                f"SELECT disabled_reason, COUNT(*) FROM {self.table} "  # noqa: S608
                "WHERE deleted = 0 AND disabled_reason IS NOT NULL GROUP BY disabled_reason"
            )
            found = {str(reason): int(n) for reason, n in map(values, db.fetchall())}
        return {reason: found.get(reason, 0) for reason in DISABLE_REASONS}


class DeliveryIndex(_Ids):
    name = "webhook_delivery_index"
    schema = (
        "delivery_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, endpoint_id TEXT NOT NULL, "
        "created_at TEXT NOT NULL, state TEXT NOT NULL, version BIGINT NOT NULL"
    )
    columns = ("delivery_id", "tenant", "endpoint_id", "created_at", "state", "version")
    changing = ("state", "version")
    time_column = "created_at"
    topic_marker = ":WebhookDelivery."
    topics = stored_topics(events_of(WebhookDelivery), deliveries.EARLIER_TOPICS)
    cursor_scope = frozenset({"tenant", "endpoint_id"})  # a cursor must be this endpoint's

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        d: WebhookDelivery = aggregate
        return (str(d.id), d.tenant, str(d.endpoint_id), sortable(d.created_on), d.state, d.version)

    def page(
        self,
        tenant: str,
        endpoint_id: uuid.UUID,
        *,
        limit: int,
        state: str | None = None,
        starting_after: uuid.UUID | None = None,
    ) -> Page:
        equal = {"tenant": tenant, "endpoint_id": str(endpoint_id), "state": state}
        return self.ids(equal, limit, starting_after)


class WebhookIndex:
    """Both lists, built together over one application."""

    def __init__(self, app: ServiceApplication) -> None:
        self.endpoints = EndpointIndex(app)
        self.deliveries = DeliveryIndex(app)

    def catch_up(self) -> int:
        return self.endpoints.catch_up() + self.deliveries.catch_up()
