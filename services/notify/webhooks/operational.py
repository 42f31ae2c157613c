"""Operational webhook events: about a tenant's webhooks themselves, not about refunds.

- `webhook.test.v1`: sent on request to one endpoint, to check a receiver and its signature
  verification.
- `webhook.endpoint_disabled.v1`: sent to the tenant's other enabled endpoints that subscribe
  to it (or to "*") when one of its endpoints is disabled by us — it answered 410, or it kept
  failing — so that the tenant is told even if it gave no `alert_email`.

Both are plain CloudEvents (the required attributes, `subject` naming the endpoint, and the
tenant), signed and retried like any other delivery, and kept in the receiving endpoint's log.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from shared.contracts import EVENT_TYPES, ApiKeyIssuedV1, ApiKeyRevokedV1

SOURCE = "notify"


class WebhookTestV1(BaseModel):
    """A test event sent on request to one endpoint; no refund changed."""

    TYPE: ClassVar[str] = "webhook.test.v1"

    endpoint_id: str = Field(examples=["we_3f2a1b0c5d4e4f0ea1c298b37e6a1d2c"])
    message: str = "A test event sent on request; no refund changed."


class WebhookEndpointDisabledV1(BaseModel):
    """One of the tenant's endpoints was disabled by us: it answered 410 Gone, or it had no
    success for the configured period. Re-enable it once its receiver works, then redeliver."""

    TYPE: ClassVar[str] = "webhook.endpoint_disabled.v1"

    endpoint_id: str = Field(examples=["we_3f2a1b0c5d4e4f0ea1c298b37e6a1d2c"])
    url: str
    reason: Literal["gone", "failing"]
    failing_since: datetime | None
    disabled_at: datetime


# The operational types an endpoint may subscribe to (the test event is never fanned out).
SUBSCRIBABLE: dict[str, type[BaseModel]] = {
    WebhookEndpointDisabledV1.TYPE: WebhookEndpointDisabledV1
}
# Intake's platform-key events travel on its refund topic for notify's own use (it keeps the
# keys that open its API, services/notify/platform_keys.py); they tell platforms nothing about
# refunds, and one tenant's keys are none of its receivers' business: never offered nor sent.
INTERNAL = frozenset({ApiKeyIssuedV1.TYPE, ApiKeyRevokedV1.TYPE})
# Every type an endpoint may subscribe to: the refund events of the four topics, and ours.
OFFERED: dict[str, type[BaseModel]] = {
    **{name: model for name, model in EVENT_TYPES.items() if name not in INTERNAL},
    **SUBSCRIBABLE,
}


def cloud_event(
    data: WebhookTestV1 | WebhookEndpointDisabledV1, *, tenant: str, event_id: str, at: datetime
) -> str:
    """The delivery body: the CloudEvent as JSON text."""
    return json.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": SOURCE,
            "type": data.TYPE,
            "subject": data.endpoint_id,
            "time": at.isoformat(),
            "datacontenttype": "application/json",
            "tenant": tenant,
            "data": data.model_dump(mode="json"),
        },
        separators=(",", ":"),
    )


def disabled_event_id(endpoint_id: uuid.UUID, disabled_at: datetime) -> str:
    """Stable for one disabling, so a decision redone on fresh state schedules no second."""
    return str(uuid.uuid5(endpoint_id, f"disabled/{disabled_at.isoformat()}"))
