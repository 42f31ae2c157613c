"""Webhook read models: a tenant's endpoints and each endpoint's delivery log, newest first.

Rows are kept from notify's own event log (see shared/readmodel.py) and give the ids of a page;
the views are rendered from the aggregates themselves.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from services.notify.endpoints import WebhookDelivery, WebhookEndpoint
from shared.application import ServiceApplication
from shared.readmodel import ReadModel, UnknownCursor, sortable

__all__ = ["DeliveryIndex", "EndpointIndex", "Page", "UnknownCursor", "WebhookIndex"]


@dataclass(frozen=True)
class Page:
    ids: list[uuid.UUID]
    has_more: bool


class EndpointIndex(ReadModel):
    name = "webhook_endpoint_index"
    schema = (
        "endpoint_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, created_at TEXT NOT NULL, "
        "deleted INTEGER NOT NULL, version BIGINT NOT NULL"
    )
    columns = ("endpoint_id", "tenant", "created_at", "deleted", "version")
    changing = ("deleted", "version")
    time_column = "created_at"
    topic_marker = ":WebhookEndpoint."
    cursor_scope = frozenset({"tenant"})

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        endpoint: WebhookEndpoint = aggregate
        return (
            str(endpoint.id),
            endpoint.tenant,
            sortable(endpoint.created_on),
            int(endpoint.deleted),
            endpoint.version,
        )

    def page(self, tenant: str, *, limit: int, starting_after: uuid.UUID | None = None) -> Page:
        found, has_more = self.fetch(
            {"tenant": tenant, "deleted": 0},
            limit=limit,
            starting_after=str(starting_after) if starting_after else None,
        )
        return Page([uuid.UUID(str(row[0])) for row in found], has_more)


class DeliveryIndex(ReadModel):
    name = "webhook_delivery_index"
    schema = (
        "delivery_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, endpoint_id TEXT NOT NULL, "
        "created_at TEXT NOT NULL, state TEXT NOT NULL, version BIGINT NOT NULL"
    )
    columns = ("delivery_id", "tenant", "endpoint_id", "created_at", "state", "version")
    changing = ("state", "version")
    time_column = "created_at"
    topic_marker = ":WebhookDelivery."
    cursor_scope = frozenset({"tenant", "endpoint_id"})  # a cursor must be this endpoint's

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        delivery: WebhookDelivery = aggregate
        return (
            str(delivery.id),
            delivery.tenant,
            str(delivery.endpoint_id),
            sortable(delivery.created_on),
            delivery.state,
            delivery.version,
        )

    def page(
        self,
        tenant: str,
        endpoint_id: uuid.UUID,
        *,
        limit: int,
        state: str | None = None,
        starting_after: uuid.UUID | None = None,
    ) -> Page:
        found, has_more = self.fetch(
            {"tenant": tenant, "endpoint_id": str(endpoint_id), "state": state},
            limit=limit,
            starting_after=str(starting_after) if starting_after else None,
        )
        return Page([uuid.UUID(str(row[0])) for row in found], has_more)


class WebhookIndex:
    """Both lists, built together over one application."""

    def __init__(self, app: ServiceApplication) -> None:
        self.endpoints = EndpointIndex(app)
        self.deliveries = DeliveryIndex(app)

    def catch_up(self) -> int:
        return self.endpoints.catch_up() + self.deliveries.catch_up()
