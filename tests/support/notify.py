"""Notify on SQLite in a test's folder, and the upstream events it reacts to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from services.notify.application import NotifyApplication
from services.notify.settings import NotifySettings
from shared.contracts import (
    ApiKeyIssuedV1,
    ApiKeyRevokedV1,
    CloudEvent,
    CustomerContact,
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    RefundedItem,
    RefundRequestedV1,
    envelope,
)
from shared.ids import public_id
from shared.keystore import open_keystore

NOW = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
CNY_129 = MoneyModel(amount=12900, currency="CNY")


def notify_app(folder: Path) -> NotifyApplication:
    app = NotifyApplication(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(folder / "notify.sqlite"),
            "SINGLE_ROW_TRACKING": "n",
        }
    )
    app.keystore = open_keystore(NotifySettings(data_dir=folder), "notify")
    return app


def new_refund_id() -> str:
    return public_id("rf", uuid.uuid4())


def requested(refund_id: str, *, tenant: str = "acme") -> RefundRequestedV1:
    return RefundRequestedV1(
        refund_id=refund_id,
        tenant=tenant,
        order_id="ORD-1001",
        customer_id="C-42",
        amount=CNY_129,
        paid=CNY_129,
        payment=PaymentRoute(method="alipay", reference="2026110122001"),
        items=[RefundedItem(sku="TSHIRT-L-WHITE", quantity=1)],
        reason="damaged",
        desired_outcome="full_refund",
        channel="app",
        customer=CustomerContact.model_validate({"email": "li.wei@example.com", "locale": "en"}),
        requested_at=NOW,
    )


def key_issued(key_id: str, key_hash: str, *, tenant: str = "acme") -> ApiKeyIssuedV1:
    return ApiKeyIssuedV1(
        refund_id=key_id,
        tenant=tenant,
        key_hash=key_hash,
        prefix="sk_live_abcd",
        actor="cli:ops",
        issued_at=NOW,
    )


def key_revoked(key_id: str, *, tenant: str = "acme") -> ApiKeyRevokedV1:
    return ApiKeyRevokedV1(refund_id=key_id, tenant=tenant, actor="cli:ops", revoked_at=NOW)


def cloud(
    event: IntegrationEvent, position: int, source: str = "intake", event_id: str | None = None
) -> CloudEvent:
    """The event as `source` publishes it at `position` of its log; a re-publication keeps
    the event's id (`event_id`) under a new position."""
    event_id = event_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source}/{position}"))
    return envelope(
        event, source=source, event_id=event_id, position=position, time=NOW, causation_id=None
    )
