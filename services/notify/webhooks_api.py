"""Notify's webhook routes for platforms: endpoints, their secrets, and their delivery logs."""
# No `from __future__ import annotations`: FastAPI resolves the closure-scoped
# dependency aliases in build_webhooks_router() at runtime.

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, EmailStr, Field

from services.notify.application import NotifyApplication
from services.notify.endpoints import EndpointRefused, WebhookDelivery, WebhookEndpoint
from services.notify.operational import SUBSCRIBABLE
from services.notify.webhook_commands import (
    DELIVERY_PREFIX,
    ENDPOINT_PREFIX,
    DeliveryNotFound,
    EndpointNotFound,
    InvalidEndpoint,
    delivery_public_id,
    endpoint_public_id,
)
from services.notify.webhook_index import UnknownCursor, WebhookIndex
from shared.auth import ApiKeys
from shared.contracts import EVENT_TYPES
from shared.http import Problem, problem_responses
from shared.idempotency import IdempotencyMismatch
from shared.ids import parse_public_id
from shared.keyed import IdempotencyKey, answer, idempotency_conflict, invalid, keyed

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


class EndpointCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://hooks.example.com/refunds",
                    "event_types": ["refund.requested.v1", "payout.succeeded.v1"],
                    "description": "ERP sync",
                    "alert_email": "ops@example.com",
                }
            ]
        },
    )

    url: Url
    event_types: EventTypes
    description: Description = ""
    alert_email: EmailStr | None = Field(
        None, description="told when the endpoint is disabled for failing"
    )


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"enabled": True}, {"event_types": ["*"]}]},
    )

    url: Url | None = None
    event_types: EventTypes | None = None
    description: Description | None = None
    alert_email: EmailStr | None = Field(None, description="null removes it")
    enabled: bool | None = Field(
        None, description="true re-enables a disabled endpoint; false disables it"
    )


class RotateSecret(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"expire_previous_after_seconds": 3600}]}
    )

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
    disabled_reason: Literal["gone", "failing", "manual"] | None = Field(
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


class EndpointList(BaseModel):
    object: Literal["list"] = "list"
    url: str
    has_more: bool
    data: list[EndpointView]


class EndpointDeleted(BaseModel):
    id: str = Field(examples=[ENDPOINT_EXAMPLE])
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    deleted: Literal[True] = True


class AttemptView(BaseModel):
    n: int = Field(examples=[1])
    started_at: datetime
    finished_at: datetime | None
    outcome: Literal["in_flight", "succeeded", "failed", "uncertain"]
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
    state: Literal["pending", "delivered", "failed", "uncertain"] = Field(
        description="uncertain: sent, but whether it arrived is unknown; never resent by itself"
    )
    reason: str | None = Field(description="why a delivery was failed without an attempt")
    next_attempt_at: datetime | None
    created_at: datetime
    attempts: list[AttemptView]


# Who publishes each family of event types (the CloudEvent's `source`).
SOURCES = {
    "refund": "intake",
    "customer": "intake",
    "api_key": "intake",
    "review": "review",
    "payout": "payout",
    "notification": "notify",
    "webhook": "notify",  # operational: about the webhooks themselves
}


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
        source=SOURCES[name.split(".")[0]],
        description=" ".join((model.__doc__ or "").split()),
        data_schema=model.model_json_schema(),
    )


class DeliveryList(BaseModel):
    object: Literal["list"] = "list"
    url: str
    has_more: bool
    data: list[DeliveryView]


def endpoint_view(endpoint: WebhookEndpoint) -> EndpointView:
    return EndpointView(
        id=endpoint_public_id(endpoint.id),
        url=endpoint.url,
        event_types=endpoint.event_types,
        description=endpoint.description,
        alert_email=endpoint.alert_email,
        status="enabled" if endpoint.enabled else "disabled",
        disabled_reason=endpoint.disabled_reason,  # type: ignore[arg-type]
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
        state=delivery.state,  # type: ignore[arg-type]
        reason=delivery.reason,
        next_attempt_at=delivery.next_attempt_at,
        created_at=delivery.created_at,
        attempts=[AttemptView(**attempt) for attempt in delivery.attempts],
    )


async def run(command: Callable[[], Any]) -> Any:
    """Run a command off the event loop and turn its refusals into problem documents."""
    try:
        return await asyncio.to_thread(command)
    except EndpointNotFound as missing:
        raise Problem(
            404, "No such webhook endpoint", f"No endpoint {missing}.", kind="not-found"
        ) from None
    except DeliveryNotFound as missing:
        raise Problem(
            404, "No such webhook delivery", f"No delivery {missing}.", kind="not-found"
        ) from None
    except IdempotencyMismatch:
        raise idempotency_conflict() from None
    except InvalidEndpoint as refused:
        raise Problem(
            422,
            "Invalid request",
            f"{len(refused.errors)} field(s) failed validation.",
            kind="validation",
            errors=refused.errors,
        ) from None
    except EndpointRefused as refused:
        raise Problem(
            409, "Not allowed in this state", refused.message, kind=refused.code.replace("_", "-")
        ) from None
    except UnknownCursor as unknown:
        raise invalid("query.starting_after", "unknown_cursor", f"no such id {unknown}") from None


def cursor(prefix: str, value: str | None) -> Any:
    if value is None:
        return None
    parsed = parse_public_id(prefix, value)
    if parsed is None:
        raise invalid("query.starting_after", "unknown_cursor", f"expected {prefix}_<32 hex>")
    return parsed


def build_webhooks_router(app: NotifyApplication, keys: ApiKeys, index: WebhookIndex) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["webhooks"])
    subscribable = {**EVENT_TYPES, **SUBSCRIBABLE}
    catalog = EventTypeList(
        data=[event_type_view(name, model) for name, model in sorted(subscribable.items())]
    )

    def tenant(authorization: Annotated[str | None, Header()] = None) -> str:
        return keys.tenant_for(authorization)

    Tenant = Annotated[str, Depends(tenant)]
    EndpointId = Annotated[
        str, Path(description="the endpoint's id", examples=[ENDPOINT_EXAMPLE], max_length=64)
    ]
    DeliveryId = Annotated[
        str, Path(description="the delivery's id", examples=[DELIVERY_EXAMPLE], max_length=64)
    ]
    Limit = Annotated[int, Query(ge=1, le=100)]
    After = Annotated[str | None, Query(description="the last id of the previous page")]

    @router.get(
        "/webhook_event_types",
        response_model=EventTypeList,
        summary="Every event type an endpoint can subscribe to",
        responses=problem_responses(401),
    )
    async def list_event_types(tenant: Tenant) -> JSONResponse:
        """Each CloudEvent type with its publisher, what it means and the JSON Schema of its
        `data` (the AsyncAPI document, docs/asyncapi.json, describes the same)."""
        return answer(catalog)

    @router.post(
        "/webhook_endpoints",
        status_code=201,
        response_model=EndpointWithSecret,
        summary="Register a webhook endpoint",
        responses=problem_responses(400, 401, 409, 413, 422),
    )
    async def create_endpoint(
        body: EndpointCreate,
        tenant: Tenant,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Events of the listed types are POSTed to `url`, signed per Standard Webhooks with the
        `secret` in the answer (shown only here and on rotation). The URL must be https and
        resolve only to public addresses (422 names the reason otherwise)."""
        request_key = keyed(tenant, idempotency_key, request, body)
        endpoint, replayed = await run(
            lambda: app.register_endpoint(
                tenant=tenant,
                url=body.url,
                event_types=body.event_types,
                description=body.description,
                alert_email=body.alert_email,
                actor=f"tenant:{tenant}",
                keyed=request_key,
            )
        )
        shown = await run(lambda: with_secret(endpoint, app.endpoint_secret(endpoint)))
        return answer(shown, 201, replayed)

    @router.get(
        "/webhook_endpoints",
        response_model=EndpointList,
        summary="List webhook endpoints, newest first",
        responses=problem_responses(401, 422),
    )
    async def list_endpoints(
        tenant: Tenant, request: Request, limit: Limit = 10, starting_after: After = None
    ) -> JSONResponse:
        after = cursor(ENDPOINT_PREFIX, starting_after)

        def page() -> EndpointList:
            found = index.endpoints.page(tenant, limit=limit, starting_after=after)
            views = [endpoint_view(app.endpoint(uid)) for uid in found.ids]
            return EndpointList(url=request.url.path, has_more=found.has_more, data=views)

        return answer(await run(page))

    @router.get(
        "/webhook_endpoints/{endpoint_id}",
        response_model=EndpointView,
        summary="Get a webhook endpoint",
        responses=problem_responses(401, 404),
    )
    async def get_endpoint(endpoint_id: EndpointId, tenant: Tenant) -> JSONResponse:
        endpoint = await run(lambda: app.endpoint_for(tenant, endpoint_id))
        return answer(endpoint_view(endpoint))

    @router.post(
        "/webhook_endpoints/{endpoint_id}",
        response_model=EndpointView,
        summary="Update a webhook endpoint, or re-enable it",
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def update_endpoint(
        endpoint_id: EndpointId,
        body: EndpointUpdate,
        tenant: Tenant,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Only the fields sent change. `enabled: true` re-enables an endpoint disabled after a
        410 or after failing too long; deliveries failed meanwhile can be redelivered."""
        changes = {name: getattr(body, name) for name in body.model_fields_set}
        nulls = [n for n in ("url", "event_types", "description", "enabled") if n in changes]
        for name in nulls:
            if changes[name] is None:
                raise invalid(name, "null", f"{name} cannot be null")
        request_key = keyed(tenant, idempotency_key, request, body)
        endpoint, replayed = await run(
            lambda: app.update_endpoint(
                tenant=tenant,
                endpoint_id=endpoint_id,
                changes=changes,
                actor=f"tenant:{tenant}",
                keyed=request_key,
            )
        )
        return answer(endpoint_view(endpoint), 200, replayed)

    @router.delete(
        "/webhook_endpoints/{endpoint_id}",
        response_model=EndpointDeleted,
        summary="Delete a webhook endpoint",
        responses=problem_responses(401, 404),
    )
    async def delete_endpoint(endpoint_id: EndpointId, tenant: Tenant) -> JSONResponse:
        """Nothing more is sent to it; pending deliveries fail when they come due."""
        endpoint = await run(
            lambda: app.delete_endpoint(
                tenant=tenant, endpoint_id=endpoint_id, actor=f"tenant:{tenant}"
            )
        )
        return answer(EndpointDeleted(id=endpoint_public_id(endpoint.id)))

    @router.post(
        "/webhook_endpoints/{endpoint_id}/rotate_secret",
        response_model=EndpointWithSecret,
        summary="Rotate the signing secret",
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def rotate_secret(
        endpoint_id: EndpointId,
        tenant: Tenant,
        request: Request,
        body: RotateSecret | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """A new secret signs from now on; the previous one signs too (a second `v1,`
        signature) for `expire_previous_after_seconds`, so receivers can switch over."""
        body = body or RotateSecret.model_validate({})
        request_key = keyed(tenant, idempotency_key, request, body)
        overlap = timedelta(seconds=body.expire_previous_after_seconds)
        endpoint, replayed = await run(
            lambda: app.rotate_secret(
                tenant=tenant,
                endpoint_id=endpoint_id,
                expire_previous_after=overlap,
                actor=f"tenant:{tenant}",
                keyed=request_key,
            )
        )
        shown = await run(lambda: with_secret(endpoint, app.endpoint_secret(endpoint)))
        return answer(shown, 200, replayed)

    @router.get(
        "/webhook_endpoints/{endpoint_id}/deliveries",
        response_model=DeliveryList,
        summary="The endpoint's delivery log, newest first",
        responses=problem_responses(401, 404, 422),
    )
    async def list_deliveries(
        endpoint_id: EndpointId,
        tenant: Tenant,
        request: Request,
        limit: Limit = 10,
        starting_after: After = None,
        state: Literal["pending", "delivered", "failed", "uncertain"] | None = None,
    ) -> JSONResponse:
        """Every delivery with its attempts: when, the status code, latency and an excerpt of
        the answer."""
        after = cursor(DELIVERY_PREFIX, starting_after)

        def page() -> DeliveryList:
            endpoint = app.endpoint_for(tenant, endpoint_id)
            found = index.deliveries.page(
                tenant, endpoint.id, limit=limit, state=state, starting_after=after
            )
            views = [delivery_view(app.delivery(uid)) for uid in found.ids]
            return DeliveryList(url=request.url.path, has_more=found.has_more, data=views)

        return answer(await run(page))

    @router.get(
        "/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}",
        response_model=DeliveryView,
        summary="One delivery with its attempts",
        responses=problem_responses(401, 404),
    )
    async def get_delivery(
        endpoint_id: EndpointId, delivery_id: DeliveryId, tenant: Tenant
    ) -> JSONResponse:
        delivery = await run(lambda: app.delivery_for(tenant, endpoint_id, delivery_id))
        return answer(delivery_view(delivery))

    @router.post(
        "/webhook_endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
        status_code=202,
        response_model=DeliveryView,
        summary="Send a delivery again",
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def redeliver(
        endpoint_id: EndpointId,
        delivery_id: DeliveryId,
        tenant: Tenant,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Queues the delivery again, with the same `webhook-id` and a fresh round of retries —
        also for an `uncertain` one. 409 while its endpoint is disabled."""
        request_key = keyed(tenant, idempotency_key, request, None)
        delivery, replayed = await run(
            lambda: app.redeliver(
                tenant=tenant,
                endpoint_id=endpoint_id,
                delivery_id=delivery_id,
                actor=f"tenant:{tenant}",
                keyed=request_key,
            )
        )
        return answer(delivery_view(delivery), 202, replayed)

    @router.post(
        "/webhook_endpoints/{endpoint_id}/test",
        status_code=202,
        response_model=DeliveryView,
        summary="Send a test event",
        responses=problem_responses(400, 401, 404, 409, 413, 422),
    )
    async def send_test(
        endpoint_id: EndpointId,
        tenant: Tenant,
        request: Request,
        idempotency_key: IdempotencyKey = None,
    ) -> JSONResponse:
        """Queues a `webhook.test.v1` CloudEvent to this endpoint alone, whatever it
        subscribes to, signed and retried like any delivery and kept in its log; to check a
        receiver and its signature verification. 409 while the endpoint is disabled."""
        request_key = keyed(tenant, idempotency_key, request, None)
        delivery, replayed = await run(
            lambda: app.send_test(tenant=tenant, endpoint_id=endpoint_id, keyed=request_key)
        )
        return answer(delivery_view(delivery), 202, replayed)

    return router
