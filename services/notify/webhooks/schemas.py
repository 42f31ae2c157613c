"""The shapes of the webhook routes: endpoints, their deliveries and attempts, the catalog of
event types, and how the aggregates are shown."""

# No `from __future__ import annotations`: FastAPI and pydantic read these at runtime.

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, EmailStr, Field

from services.notify.webhooks.commands import delivery_public_id, endpoint_public_id
from services.notify.webhooks.deliveries import AttemptOutcome, DeliveryState, WebhookDelivery
from services.notify.webhooks.endpoints import DisableReason, WebhookEndpoint
from services.notify.webhooks.operational import OFFERED
from shared.contracts import PUBLISHED_BY
from shared.schemas import Listed, Strict, example

ENDPOINT_EXAMPLE = "we_3f2a1b0c5d4e4f0ea1c298b37e6a1d2c"
DELIVERY_EXAMPLE = "wd_9a8b7c6d5e4f40312a1b0c9d8e7f6a5b"
EventTypes = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=100)]],
    Field(
        min_length=1,
        max_length=50,
        description='CloudEvent types, e.g. "refund.requested.v1"; ["*"] for every type',
        examples=[["refund.requested.v1", "payout.succeeded.v1"]],
    ),
]
Url = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description="https URL on a public address; redirects are not followed",
        examples=["https://hooks.example.com/refunds"],
    ),
]
Description = Annotated[str, Field(max_length=500, examples=["ERP sync"])]


class EndpointCreate(Strict):
    model_config = example(
        {
            "url": "https://hooks.example.com/refunds",
            "event_types": ["refund.requested.v1", "payout.succeeded.v1"],
            "description": "ERP sync",
            "alert_email": "ops@example.com",
        }
    )

    url: Url
    event_types: EventTypes
    description: Description = ""
    alert_email: EmailStr | None = Field(
        None, description="told when the endpoint is disabled for failing"
    )


class EndpointUpdate(Strict):
    model_config = example({"enabled": True}, {"event_types": ["*"]})

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    alert_email: EmailStr | None = Field(None, description="null removes it")
    enabled: bool | None = Field(
        None, description="true re-enables a disabled endpoint; false disables it"
    )


class RotateSecret(Strict):
    model_config = example({"expire_previous_after_seconds": 3600})

    expire_previous_after_seconds: int = Field(
        86400,
        ge=0,
        le=86400,
        description="how long the previous secret still signs beside the new one",
    )


class EndpointView(BaseModel):
    id: str = Field(examples=[ENDPOINT_EXAMPLE])
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str = Field(examples=["https://hooks.example.com/refunds"])
    event_types: list[str] = Field(examples=[["refund.requested.v1"]])
    description: str
    alert_email: str | None
    status: Literal["enabled", "disabled"]
    disabled_reason: DisableReason | None = Field(
        description="gone: the receiver answered 410; failing: no success for too long"
    )
    disabled_at: datetime | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="until then the previous secret signs too (after a rotation)"
    )
    created_at: datetime


class EndpointWithSecret(EndpointView):
    secret: str = Field(
        description="Standard Webhooks signing secret; shown on creation and rotation only",
        examples=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )


class EndpointList(Listed):
    data: list[EndpointView]


class EndpointDeleted(BaseModel):
    id: str = Field(examples=[ENDPOINT_EXAMPLE])
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    deleted: Literal[True] = True


class AttemptView(BaseModel):
    n: int = Field(examples=[1])
    started_at: datetime
    finished_at: datetime | None
    outcome: AttemptOutcome
    status_code: int | None = Field(examples=[500])
    latency_ms: int | None = Field(examples=[87])
    error: str | None = Field(examples=["HTTP 500"])
    response_excerpt: str = Field(description="at most 256 characters of the answer")


class DeliveryView(BaseModel):
    id: str = Field(
        examples=[DELIVERY_EXAMPLE], description="also the `webhook-id` header of every attempt"
    )
    object: Literal["webhook_delivery"] = "webhook_delivery"
    endpoint_id: str = Field(examples=[ENDPOINT_EXAMPLE])
    event_id: str = Field(description="the CloudEvent's id")
    event_type: str = Field(examples=["refund.requested.v1"])
    refund_id: str | None = Field(description="none for a test event (`webhook.test.v1`)")
    state: DeliveryState = Field(
        description="uncertain: sent, but whether it arrived is unknown; never resent by itself"
    )
    reason: str | None = Field(description="why a delivery was failed without an attempt")
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: list[AttemptView]


# Who publishes each type (the CloudEvent's `source`): the contracts say, and notify's
# operational types (about the webhooks themselves) are its own.
def _source(name: str) -> str:
    return PUBLISHED_BY.get(name, "notify")


class EventTypeView(BaseModel):
    object: Literal["webhook_event_type"] = "webhook_event_type"
    type: str = Field(examples=["payout.succeeded.v1"])
    source: str = Field(examples=["payout"], description="the service that publishes it")
    description: str
    data_schema: dict[str, Any] = Field(description="JSON Schema of the CloudEvent's `data`")


class EventTypeList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EventTypeView]


def event_type_view(name: str, model: type[BaseModel]) -> EventTypeView:
    return EventTypeView(
        type=name,
        source=_source(name),
        description=" ".join((model.__doc__ or "").split()),
        data_schema=model.model_json_schema(),
    )


class DeliveryList(Listed):
    data: list[DeliveryView]


def endpoint_view(endpoint: WebhookEndpoint) -> EndpointView:
    return EndpointView(
        id=endpoint_public_id(endpoint.id),
        url=endpoint.url,
        event_types=endpoint.event_types,
        description=endpoint.description,
        alert_email=endpoint.alert_email,
        status="enabled" if endpoint.enabled else "disabled",
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        failing_since=endpoint.failing_since,
        previous_secret_expires_at=endpoint.previous_expires_at,
        created_at=endpoint.created_on,
    )


def with_secret(endpoint: WebhookEndpoint, secret: str) -> EndpointWithSecret:
    return EndpointWithSecret(**endpoint_view(endpoint).model_dump(), secret=secret)


def delivery_view(delivery: WebhookDelivery) -> DeliveryView:
    return DeliveryView(
        id=delivery_public_id(delivery.id),
        endpoint_id=endpoint_public_id(delivery.endpoint_id),
        event_id=delivery.event_id,
        event_type=delivery.event_type,
        refund_id=delivery.refund_id or None,
        state=delivery.state,
        reason=delivery.reason,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        attempts=[AttemptView(**attempt) for attempt in delivery.attempts],
    )


# Every type an endpoint can subscribe to, as `GET /v1/webhook_event_types` lists it.
CATALOG = EventTypeList(
    data=[event_type_view(name, model) for name, model in sorted(OFFERED.items())]
)
